# syntax=docker/dockerfile:1.7
# One image with the four services (cdc, loadgen, analytics, dashboard); docker-compose
# picks the binary with `command:`. BuildKit cache mounts keep the cargo registry
# and target directory between builds, so only changed crates recompile.

FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
        libssl-dev pkg-config zlib1g-dev libsasl2-dev cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p cdc -p loadgen -p analytics -p dashboard \
    && mkdir -p /out \
    && cp target/release/cdc target/release/loadgen target/release/analytics target/release/dashboard /out/

FROM debian:bookworm-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends \
        ca-certificates libssl3 libsasl2-2 zlib1g curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /app app
COPY --from=build /out/ /usr/local/bin/
USER app
WORKDIR /app
ENV RUST_LOG=info METRICS_ADDR=0.0.0.0:9100
EXPOSE 9100 8088
