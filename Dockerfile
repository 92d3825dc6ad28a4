# rthanos image: a drop-in for quay.io/thanos/thanos. Same entrypoint shape (the first argument
# is the component, e.g. `sidecar`, as kube-prometheus-stack passes it), same ports.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Revision and branch for `--version` and thanos_build_info (.git is not in the build context).
ARG RTHANOS_REVISION=unknown
ARG RTHANOS_BRANCH=unknown
ENV RTHANOS_REVISION=${RTHANOS_REVISION} RTHANOS_BRANCH=${RTHANOS_BRANCH}
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin rthanos \
    && cp target/release/rthanos /usr/local/bin/rthanos

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin rthanos
COPY --from=build /usr/local/bin/rthanos /bin/rthanos
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001
EXPOSE 10901 10902
ENTRYPOINT ["rthanos"]
