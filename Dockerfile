# syntax=docker/dockerfile:1
#
# remora's container image: a release build of the binary on a distroless base.
#
#   docker build -t remora:dev .
#   docker run --rm -p 9479:9479 -v "$PWD/exporter.yaml:/etc/remora/exporter.yaml:ro" remora:dev
#
# The image runs as UID/GID 65532 (non-root), writes nothing (fine with a read-only root
# file system) and reads its configuration from /etc/remora/exporter.yaml: mount a
# ConfigMap or a directory there. Size: the distroless base (about 20 MiB: glibc,
# libgcc, CA certificates, tzdata) plus the stripped remora binary.

# Any current stable Rust; bookworm's glibc (2.36) is the distroless base's.
FROM rust:1-bookworm AS build
# The git revision for remora_build_info (.git is not in the build context):
#   docker build --build-arg REMORA_REVISION="$(git rev-parse --short=12 HEAD)" .
ARG REMORA_REVISION=unknown
WORKDIR /src
COPY . .
# The cache mounts keep the crate registry and the target directory between builds
# (BuildKit); the binary is copied out of the cached target directory.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin remora \
    && install -D -m 0755 target/release/remora /out/remora

# cc: glibc and libgcc for the Rust binary (TLS is rustls/ring: no OpenSSL needed);
# CA certificates for https targets; :nonroot runs as 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/remora /usr/local/bin/remora
USER 65532:65532
EXPOSE 9479
ENTRYPOINT ["/usr/local/bin/remora"]
CMD ["--config.file=/etc/remora/exporter.yaml", "--web.listen-address=0.0.0.0:9479"]
