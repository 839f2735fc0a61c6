# ecs-rebalancer: the controller as a container image.
#   docker build -t ecs-rebalancer .
#   docker run --rm -e AWS_REGION=eu-west-1 -v "$PWD/policies:/policies:ro" ecs-rebalancer \
#     run --policy /policies --cluster prod --table ecs-rebalancer --listen 0.0.0.0:9100
# No Docker engine runs on this project's machines, so this file has never been built here: it is kept simple so that
# it is correct by reading it. See docs/operations.md (the image) and docs/deploy.md (running it on AWS).

# Build: the full Rust image, not -slim, because aws-lc-sys (the AWS SDK's TLS crypto) compiles C and needs a C
# compiler. Debian 12 (bookworm), as the runtime base, so the binary links against the same glibc.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# What `cargo build` needs, and nothing it does not:
# - Cargo.toml and Cargo.lock: the manifest, and the pinned versions that --locked insists on.
# - src: the library and the binary.
# - benches: Cargo.toml declares [[bench]] placement and plan without a path; cargo refuses to load a manifest whose
#   declared targets have no file, even to build only the binary.
# - tests/tests.rs and tests/run_loop.rs: the two [[test]] targets Cargo.toml declares (autotests = false), for the
#   same reason. The modules and fixtures they use are not needed to build the binary.
# Left out: examples (found by convention, not declared: a missing folder just means no examples), rustfmt.toml
# (read by rustfmt, not by cargo), docs (include_str! of docs/plan.md is in a #[cfg(test)] module only).
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY benches benches
COPY tests/tests.rs tests/run_loop.rs tests/
# Cargo.toml's release profile decides debug info, stripping and LTO. The crash-points feature stays off, so the
# image has no hidden --crash-at flag.
RUN cargo build --release --locked --bin ecs-rebalancer

# Runtime: distroless, with glibc, libgcc, CA certificates and /etc/passwd, and no shell, package manager or curl
# (the ECS health check runs `ecs-rebalancer health` instead).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/ecs-rebalancer /usr/local/bin/ecs-rebalancer
# The example policies, so that the image runs with no policy repository (and `validate /policies` works).
COPY policies /policies
# A git policy source is fetched into a temporary folder under /tmp. With a read-only root filesystem, ECS mounts a
# task volume there; declaring it here makes Fargate give that volume the image's /tmp (mode 1777), so the nonroot
# user can write to it.
VOLUME ["/tmp"]
USER nonroot
EXPOSE 9100
ENTRYPOINT ["/usr/local/bin/ecs-rebalancer"]
CMD ["run", "--policy", "/policies", "--listen", "0.0.0.0:9100"]
