# syntax=docker/dockerfile:1

# The relay's container image, and a fake Chatwoot to try it against.
#
#   docker build -t relay .                                  # the relay (default target)
#   docker build -t chatwoot-fake --target chatwoot-fake .   # the fake, for trials and tests
#
# Both run as the distroless "nonroot" user (UID/GID 65532) from a static
# binary, with a read-only root file system: the relay writes only under
# RELAY_DATA_DIR (/data, a volume). The image keeps the relay's loopback
# addresses (RELAY_HTTP_ADDR=127.0.0.1:8080, RELAY_NATS_LISTEN=127.0.0.1:4222),
# so a bare `docker run` serves no one outside the container (the HEALTHCHECK,
# run inside it, still reaches it; so does `-demo`). To publish the ports set
# RELAY_HTTP_ADDR=0.0.0.0:8080 with RELAY_API_TOKENS (or RELAY_API_TOKENS_FILE),
# and RELAY_NATS_LISTEN=0.0.0.0:4222 with NATS authentication: without them the
# relay refuses to start rather than serve everyone.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
ENV CGO_ENABLED=0
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# -tags nodemo leaves out the demo (`relay -demo`) and the fake Chatwoot it runs.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -tags nodemo -trimpath -ldflags "-s -w" -o /out/relay ./cmd/relay && \
    mkdir -p /out/data

# The fake Chatwoot is built only for its own target: the relay image does
# not carry a test tool.
FROM build AS build-fake
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags "-s -w" -o /out/chatwoot-fake ./cmd/chatwoot-fake && \
    mkdir -p /out/setup

FROM gcr.io/distroless/static-debian12:nonroot AS chatwoot-fake
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="chatwoot-fake" \
      org.opencontainers.image.description="A fake Chatwoot (ActionCable /cable and the public client API) with simulated agents, for trying and testing the relay" \
      org.opencontainers.image.source="https://github.com/relayhq/relay" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build-fake /out/chatwoot-fake /chatwoot-fake
# /setup is where -subscriptions-file writes for a relay to read (Docker
# Compose shares it through a volume, which takes this owner when new).
COPY --from=build-fake --chown=65532:65532 /out/setup /setup
ENV CHATWOOT_FAKE_LISTEN=0.0.0.0:3000
USER 65532:65532
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 CMD ["/chatwoot-fake", "-healthcheck"]
ENTRYPOINT ["/chatwoot-fake"]

FROM gcr.io/distroless/static-debian12:nonroot AS relay
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="relay" \
      org.opencontainers.image.description="Realtime feed of Chatwoot conversations: ActionCable subscriptions per contact, events on NATS, catch-up after reconnects" \
      org.opencontainers.image.source="https://github.com/relayhq/relay" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/relay /relay
COPY --from=build --chown=65532:65532 /out/data /data
ENV RELAY_DATA_DIR=/data RELAY_HTTP_ADDR=127.0.0.1:8080
VOLUME ["/data"]
USER 65532:65532
EXPOSE 8080 4222
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["/relay", "healthcheck"]
ENTRYPOINT ["/relay"]
