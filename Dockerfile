# Multi-stage: build with the Rust toolchain, run as a non-root user on a slim image.
# The working directory holds config.toml, so `stepgate user add NAME` finds it by default.
# No OpenSSL anywhere: TLS to Redis (rediss://) is rustls with the system CA roots.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin stepgate \
 && install -m 0755 target/release/stepgate /usr/local/bin/stepgate

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/stepgate --shell /usr/sbin/nologin stepgate \
 && mkdir -p /var/lib/stepgate /etc/stepgate \
 && chown stepgate:stepgate /var/lib/stepgate
COPY --from=build /usr/local/bin/stepgate /usr/local/bin/stepgate
COPY deploy/compose/config.toml /etc/stepgate/config.toml
USER 10001:10001
WORKDIR /etc/stepgate
EXPOSE 8080
ENTRYPOINT ["stepgate"]
CMD ["--config", "/etc/stepgate/config.toml", "run"]
