# One image per binary of the workspace:
#   docker build --build-arg BIN=command-service -t chat-command-service .
# BIN is one of command-service, projector, query-service, chat.

FROM rust:1.95-bookworm AS builder
ARG BIN
RUN test -n "$BIN" || { echo "build with --build-arg BIN=<binary name>" >&2; exit 1; }
WORKDIR /src
COPY . .
# Building needs no database (DESIGN.md §9). The caches keep rebuilds fast
# under BuildKit; the binary is copied out of the cached target directory.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin "$BIN" \
    && install -D -m 0755 "target/release/$BIN" "/out/$BIN"

FROM debian:bookworm-slim
ARG BIN
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 chat \
    && useradd --system --uid 10001 --gid chat --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin chat
COPY --from=builder /out/$BIN /usr/local/bin/$BIN
# A fixed name for ENTRYPOINT, which cannot expand build arguments.
RUN ln -s "/usr/local/bin/$BIN" /usr/local/bin/chat-entrypoint
USER chat:chat
ENV CHAT_HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/chat-entrypoint"]
