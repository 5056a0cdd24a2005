#!/usr/bin/env bash
# jobwire beside its peer (BullMQ, ../shared/bench/peer) on this machine: builds the release binaries
# once, then runs ROUNDS interleaved rounds of
#   peer throughput, jobwire throughput (shared), jobwire throughput (embedded),
#   peer latency,    jobwire latency (shared),    jobwire latency (embedded)
# collects every JSON line in a file under /tmp and prints a markdown table of medians (min–max) and
# ratios (scripts/bench_peer_table.py).
#
# Usage: scripts/bench-peer.sh [ROUNDS]      (or: just bench-peer [ROUNDS])
# Settings (environment): BENCH_ROUNDS=3 BENCH_JOBS=50000 BENCH_BATCH=1000 BENCH_RATE=1000 BENCH_SECS=10
#                         BENCH_WORKERS=1 BENCH_CONCURRENCY=50
#   BENCH_PEER (default ../shared/bench/peer/run.sh) and BENCH_PROFILE (release; `debug` only to try
#   the script quickly: a debug build's figures say nothing about speed).
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-${BENCH_ROUNDS:-3}}
jobs=${BENCH_JOBS:-50000}
batch=${BENCH_BATCH:-1000}
rate=${BENCH_RATE:-1000}
secs=${BENCH_SECS:-10}
workers=${BENCH_WORKERS:-1}
concurrency=${BENCH_CONCURRENCY:-50}

peer=${BENCH_PEER:-../shared/bench/peer/run.sh}
profile=${BENCH_PROFILE:-release}
[[ -f $peer ]] || { echo "the peer benchmark is not at $peer (it lives in the project's shared/ folder)" >&2; exit 1; }

case $profile in
  release) cargo build --release --workspace --bins ;;
  debug) cargo build --workspace --bins ;;
  *) echo "BENCH_PROFILE is release or debug, not $profile" >&2; exit 2 ;;
esac
target_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bench=$target_dir/$profile/jobwire-bench

results=$(mktemp /tmp/jobwire-bench-peer-XXXXXX.jsonl)
echo "JSON lines go to $results" >&2
failed=0

# Runs one benchmark and appends its JSON line(s); a failed run is reported and the rounds go on.
run() {
  local label=$1; shift
  echo "== round $round/$rounds: $label" >&2
  local out
  if out=$("$@"); then
    grep '^{' <<<"$out" >>"$results" || { echo "   (no JSON line from $label)" >&2; failed=$((failed + 1)); }
  else
    echo "   FAILED: $label" >&2
    failed=$((failed + 1))
  fi
}

for round in $(seq 1 "$rounds"); do
  run "peer throughput" bash "$peer" throughput "$jobs" "$workers" "$concurrency" "$batch"
  run "jobwire throughput shared" "$bench" throughput --engine shared --jobs "$jobs" --batch "$batch" \
    --workers "$workers" --worker-concurrency "$concurrency"
  run "jobwire throughput embedded" "$bench" throughput --engine embedded --jobs "$jobs" --batch "$batch" \
    --worker-concurrency "$concurrency"
  run "peer latency" bash "$peer" latency "$rate" "$secs" "$workers" "$concurrency"
  run "jobwire latency shared" "$bench" latency --engine shared --rate "$rate" --secs "$secs" \
    --workers "$workers" --worker-concurrency "$concurrency"
  run "jobwire latency embedded" "$bench" latency --engine embedded --rate "$rate" --secs "$secs" \
    --worker-concurrency "$concurrency"
done

echo
echo "$rounds rounds on $(nproc) cores; jobs $jobs (batches of $batch), latency at $rate/s for $secs s;" \
  "$workers worker process(es) × concurrency $concurrency. JSON lines: $results"
echo
python3 scripts/bench_peer_table.py "$results"
if ((failed > 0)); then
  echo "$failed run(s) failed: see above" >&2
  exit 1
fi
