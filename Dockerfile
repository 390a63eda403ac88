# syntax=docker/dockerfile:1
# MelodyHue: build the `melodyhue` binary, then run it as a non-root user on a slim base.
#   docker build -t melodyhue .
#   docker run -p 8494:8494 -v melodyhue-data:/data --env-file .env melodyhue

FROM rust:1.95-slim-bookworm AS build
# nasm assembles libjpeg-turbo's SIMD code (cover decodes several times faster; without it the
# build falls back to plain C without a word).
RUN apt-get update \
    && apt-get install -y --no-install-recommends nasm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p melodyhue --bin melodyhue

FROM debian:bookworm-slim
# CA certificates: Spotify, SMTP and PostgreSQL/MariaDB over TLS verify against the system roots.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin melodyhue \
    && mkdir -p /data \
    && chown melodyhue /data
COPY --from=build /src/target/release/melodyhue /usr/local/bin/melodyhue
USER melodyhue
WORKDIR /data
# /data keeps the embedded SQLite database and, in development, the generated secrets.
ENV HOST=0.0.0.0 \
    PORT=8494 \
    MELODYHUE_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8494
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["melodyhue", "health-check"]
ENTRYPOINT ["melodyhue"]
CMD ["serve"]
