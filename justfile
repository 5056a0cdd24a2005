# jobwire tasks. `just --list` shows them; none of them is needed to build or test.

# Run the all-in-one (API + workers) against local Postgres and Redis.
dev:
    cargo run

# The README's test command (needs Postgres and Redis running).
test:
    cargo test --workspace

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# The benchmark of the real binaries (release build), e.g. `just bench throughput --engine embedded`,
# `just bench latency --rate 500`, `just bench fanout`, `just bench idle-conns`, `just bench retention`;
# `just bench --help`.
bench *ARGS:
    cargo build --release --bins
    cargo run --release -q -p jobwire-bench -- {{ARGS}}

# jobwire beside BullMQ (../shared/bench/peer): interleaved rounds (default 3), medians and ratios.
bench-peer ROUNDS="":
    bash scripts/bench-peer.sh {{ROUNDS}}

# Postgres, Redis, API and worker in containers.
up:
    docker compose up --build

# Stop the containers.
down:
    docker compose down

# The compose stack's checks without Docker: the compose schema, mounts, Prometheus config.
check-deploy:
    python3 scripts/check-deploy.py
    promtool check config deploy/prometheus/prometheus.yml

# What CI runs.
ci:
    bash .ci/run
