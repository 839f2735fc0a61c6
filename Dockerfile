# ecs-rebalancer: the controller as a container image.
#   docker build -t ecs-rebalancer .
#   docker run --rm -v "$PWD/policies:/policies:ro" ecs-rebalancer run --policy /policies --cluster prod --table T
# (See docs/operations.md. No Docker engine runs on the project's CI machines, so this file is not built there.)

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY src src
COPY benches benches
COPY examples examples
RUN cargo build --release --locked --bin ecs-rebalancer

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home rebalancer
COPY --from=build /src/target/release/ecs-rebalancer /usr/local/bin/ecs-rebalancer
COPY policies /policies
USER 10001
EXPOSE 9100
ENTRYPOINT ["/usr/local/bin/ecs-rebalancer"]
CMD ["run", "--policy", "/policies", "--listen", "0.0.0.0:9100"]
