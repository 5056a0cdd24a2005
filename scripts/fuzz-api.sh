#!/usr/bin/env bash
# Fuzzes the API against its own OpenAPI document with schemathesis: a running `jobwire` with a
# valid token, every check on (no 5xx, status codes and content types as documented, bodies and
# headers matching their schemas, schema-valid input accepted and invalid input refused, auth
# enforced, 405 for other methods), a bounded number of examples per operation. Exits non-zero on
# any finding.
#
#   bash scripts/fuzz-api.sh                    # embedded: SQLite in a temporary directory
#   bash scripts/fuzz-api.sh shared             # Postgres and Redis (a database and a key prefix
#                                               # of its own, removed afterwards)
#   FUZZ_SEED=$RANDOM bash scripts/fuzz-api.sh  # another draw (default seed 1, 100 examples per
#                                               # operation: FUZZ_EXAMPLES)
#
# Postgres and Redis: FUZZ_PG (postgres://postgres@127.0.0.1:5432) and FUZZ_REDIS
# (redis://127.0.0.1:6379). FUZZ_BIN runs another jobwire binary than target/debug's.
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE=${1:-embedded}
SCHEMATHESIS_VERSION=4.32.5
EXAMPLES=${FUZZ_EXAMPLES:-100}
SEED=${FUZZ_SEED:-1}
VENV=${FUZZ_VENV:-/tmp/jobwire-fuzz-venv-$SCHEMATHESIS_VERSION}
PG=${FUZZ_PG:-postgres://postgres@127.0.0.1:5432}
REDIS=${FUZZ_REDIS:-redis://127.0.0.1:6379}

# schemathesis, pinned, in a virtual environment of its own (Debian's python3 needs python3-venv).
if [[ ! -x $VENV/bin/st ]]; then
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends python3-venv >/dev/null ||
      { apt-get update >/dev/null && apt-get install -y --no-install-recommends python3-venv >/dev/null; }
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

if [[ -z ${FUZZ_BIN:-} ]]; then
  cargo build --quiet -p jobwire --bin jobwire
  target=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  FUZZ_BIN=$target/debug/jobwire
fi

work=$(mktemp -d /tmp/jobwire-fuzz.XXXXXX)
id=$(basename "$work" | tr -dc 'a-zA-Z0-9' | tr 'A-Z' 'a-z')
server=
cleanup() {
  if [[ -n $server ]]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  if [[ $ENGINE == shared ]]; then
    psql "$PG/postgres" -qc "drop database if exists jobwire_fuzz_$id with (force)" >/dev/null 2>&1 || true
    redis-cli -u "$REDIS" --scan --pattern "fuzz:$id:*" 2>/dev/null |
      xargs -r redis-cli -u "$REDIS" del >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# The engines' settings; the process's own environment (a developer's DATABASE_URL) is left out.
settings=(JOBWIRE_ADDR=127.0.0.1:0 RUST_LOG=warn)
case $ENGINE in
  embedded) settings+=(JOBWIRE_DB_FILE="$work/jobwire.db") ;;
  shared)
    settings+=(DATABASE_URL="$PG/jobwire_fuzz_$id" REDIS_URL="$REDIS" JOBWIRE_PREFIX="fuzz:$id:"
      JOBWIRE_JWT_SECRET="fuzz-$id-$(date +%s%N)-at-least-32-bytes")
    ;;
  *)
    echo "usage: $0 [embedded|shared]" >&2
    exit 2
    ;;
esac

# Port 0: the address is read from the banner. Warnings and errors go to the server's log, shown
# when the fuzz fails.
env -i PATH="$PATH" "${settings[@]}" "$FUZZ_BIN" >"$work/stdout" 2>"$work/server.log" &
server=$!
url=
for _ in $(seq 1 300); do
  url=$(grep -o 'listening on http://[0-9.:]*' "$work/stdout" 2>/dev/null | cut -d' ' -f3 || true)
  [[ -n $url ]] && break
  kill -0 "$server" 2>/dev/null || break
  sleep 0.1
done
if [[ -z $url ]]; then
  echo "FAIL: jobwire did not start:"
  cat "$work/stdout" "$work/server.log"
  exit 1
fi
token=$(env -i PATH="$PATH" "${settings[@]}" "$FUZZ_BIN" token --tenant fuzz --ttl 1h)
# The worker protocol's routes take a worker token (any tenant; two types, so a lease that names
# none takes the token's).
worker_token=$(env -i PATH="$PATH" "${settings[@]}" "$FUZZ_BIN" token --worker --name fuzz \
  --type thumbnail --type fuzz --ttl 1h)
# The operators' routes take an operator token.
operator_token=$(env -i PATH="$PATH" "${settings[@]}" "$FUZZ_BIN" token --operator --name fuzz --ttl 1h)

# `GET /v1/ws` is left out: an upgrade answers 101 and the connection then speaks WebSocket, which
# an HTTP fuzzer neither expects nor can read (it would reuse the connection for its next request).
# Its refusals (401, 400, 403) have end-to-end tests of their own.
echo "fuzzing $url ($ENGINE) with schemathesis $SCHEMATHESIS_VERSION: $EXAMPLES examples per operation, seed $SEED"
# Run from the temporary directory, where schemathesis keeps its cache of crashes.
status=0
hooks=$PWD/scripts
fuzz() { # <token> <schemathesis filter options...>
  local bearer=$1
  shift
  (
    cd "$work" &&
      SCHEMATHESIS_HOOKS=fuzz_hooks PYTHONPATH="$hooks" PYTHONDONTWRITEBYTECODE=1 \
        "$VENV/bin/st" run "$url/openapi.json" \
        --checks all \
        --exclude-path /v1/ws \
        "$@" \
        --header "Authorization: Bearer $bearer" \
        --max-examples "$EXAMPLES" \
        --seed "$SEED" \
        --generation-database none \
        --request-timeout 10 \
        --no-color
  )
}
fuzz "$token" --exclude-tag workers --exclude-tag operators || status=$?
fuzz "$worker_token" --include-tag workers || status=$?
fuzz "$operator_token" --include-tag operators || status=$?
if ((status != 0)); then
  echo "--- jobwire's log (warnings and errors) ---"
  cat "$work/server.log"
  echo "FAIL: schemathesis found problems in the API ($ENGINE; see above)"
fi
exit "$status"
