# syntax=docker/dockerfile:1
# The `zhengyun` binary (operator, API and CLI in one) in a small runtime image that runs as a
# non-root user. Build: docker build -t registry.local/zhengyun/zhengyun:0.1.0 .

FROM rust:1.94-bookworm AS build
WORKDIR /src
# The whole workspace: Cargo reads every member's manifest, tests/e2e included.
COPY Cargo.toml Cargo.lock clippy.toml ./
COPY crates crates
COPY tests/e2e tests/e2e
COPY tests/devidp tests/devidp
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p zhengyun \
 && install -D -m 0755 target/release/zhengyun /out/zhengyun

# glibc and CA certificates, no shell, no package manager; uid/gid 65532 ("nonroot").
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/zhengyun /usr/local/bin/zhengyun
USER 65532:65532
# API (zhengyun api) and operator health and metrics (zhengyun operator).
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/zhengyun"]
CMD ["--help"]
