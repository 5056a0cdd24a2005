# Multi-stage: build the three binaries, ship them on a slim base.
FROM rust:1.88-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p jobwire --bins

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 jobwire
COPY --from=build /src/target/release/jobwire /src/target/release/jobwire-api /src/target/release/jobwire-worker /usr/local/bin/
USER jobwire
ENV JOBWIRE_ADDR=0.0.0.0:8080
EXPOSE 8080
CMD ["jobwire-api"]
