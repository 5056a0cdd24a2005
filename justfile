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

# End-to-end throughput and latency, embedded and on Postgres + Redis (release build).
bench *ARGS:
    cargo run --release -p jobwire-bench -- {{ARGS}}

# Postgres, Redis, API and worker in containers.
up:
    docker compose up --build

# Stop the containers.
down:
    docker compose down

# What CI runs.
ci:
    bash .ci/run
