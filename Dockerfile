# syntax=docker/dockerfile:1
#
# identity-posture-exporter container image.
#
#   docker build -t identity-posture-exporter \
#     --build-arg REVISION="$(git rev-parse --short=12 HEAD)" --build-arg VERSION=0.1.0 \
#     --build-arg SOURCE=https://git.example.com/you/identity-posture-exporter .
#   docker run --rm -p 9863:9863 identity-posture-exporter \
#     --config examples/demo.toml --listen 0.0.0.0:9863          # the bundled demo
#   docker run --rm -p 9863:9863 -v "$PWD/config.toml:/etc/identity-posture-exporter/config.toml:ro" \
#     -v "$PWD/secrets:/run/secrets/identity-posture-exporter:ro" identity-posture-exporter
#
# Stage 1 compiles with the locked dependency versions and the `dist` profile (stripped, thin
# LTO: see Cargo.toml); stage 2 is distroless: glibc, CA certificates, tzdata, no shell and no
# package manager, running as uid 65532 (nonroot).

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
# .git is not sent to the build (see .dockerignore), so build.rs cannot ask git for the
# revision: pass it in. It ends up in --version and identity_posture_exporter_build_info.
ARG REVISION=unknown
ENV IPE_GIT_REVISION=${REVISION}
# Source types to build in (cargo features), e.g. --build-arg FEATURES=okta; empty = all.
# The allocator feature (mimalloc) stays on with FEATURES too; add ALLOCATOR="" for glibc's malloc.
ARG FEATURES=""
ARG ALLOCATOR=mimalloc
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --profile dist --locked ${FEATURES:+--no-default-features --features "$FEATURES $ALLOCATOR"} \
    && install -D -m 0755 target/dist/identity-posture-exporter /out/identity-posture-exporter \
    && /out/identity-posture-exporter --version \
    && install -d -m 0700 /out/state

FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
# The repository URL this image was built from (--build-arg SOURCE=https://...).
ARG SOURCE=""
LABEL org.opencontainers.image.title="identity-posture-exporter" \
      org.opencontainers.image.description="Prometheus exporter for identity posture: MFA coverage, dormant accounts, unrotated credentials and over-privilege across identity providers" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}"

COPY --from=build /out/identity-posture-exporter /usr/local/bin/identity-posture-exporter
# The demo organisation, so `--config examples/demo.toml` works from the working directory
# (the file source resolves `path` relative to the configuration file's directory).
COPY examples/demo.toml examples/demo-identities.json examples/demo-events.ndjson /usr/share/identity-posture-exporter/examples/
# The state directory ([storage] state_dir), owned by the runtime user: a volume mounted here
# (a compose named volume, a Kubernetes PersistentVolumeClaim) starts with this ownership.
COPY --from=build --chown=65532:65532 /out/state /var/lib/identity-posture-exporter
WORKDIR /usr/share/identity-posture-exporter

USER 65532:65532
EXPOSE 9863
ENTRYPOINT ["/usr/local/bin/identity-posture-exporter"]
CMD ["--config", "/etc/identity-posture-exporter/config.toml", "--log-format", "json"]
