#!/usr/bin/env bash
# Runs every test of ecs-rebalancer. Works on a fresh machine of the project's kind (Rust toolchain present):
# it installs whatever else the tests need and starts and stops its own servers on 127.0.0.1.
# Ends with one summary line, "tests: N passed, N failed", over every test binary and the doctests.
set -euo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp)
trap 'rm -f "$log"' EXIT

# moto_server gives the tests real DynamoDB and STS semantics, and an independent ECS wire format
# (tests/sdk_against_moto.rs, through tests/moto/ecs_server.py, which needs moto's server extras: flask, flask_cors).
if ! python3 -c 'import moto, flask, flask_cors, werkzeug' 2>/dev/null; then
  python3 -m pip install --quiet 'moto[server]>=5.2,<5.3'
fi
# The AWS CLI and boto3 drive the twin as any ECS client would (tests/twin_clients.rs).
if ! command -v aws >/dev/null 2>&1 || ! python3 -c 'import boto3' 2>/dev/null; then
  python3 -m pip install --quiet awscli boto3
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
fi

# `crash-points` builds the hidden `--crash-at` flag the crash-recovery tests need (tests/production.rs), and
# `chaos` the hidden `--time-scale` and `--unfenced` flags of the short chaos soak (tests/chaos.rs); without them
# those tests are left out, so CI always turns them on.
# cfn-lint checks the CloudFormation stack (deploy/); tests/deploy.rs checks it against the program.
if ! command -v cfn-lint >/dev/null 2>&1; then
  python3 -m pip install --quiet 'cfn-lint>=1.51,<2'
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
fi
echo "cfn-lint $(cfn-lint --version | awk '{print $2}'): deploy/cloudformation/ecs-rebalancer.yaml"
cfn-lint deploy/cloudformation/ecs-rebalancer.yaml

features=(--features crash-points,chaos)
status=0
{ cargo test --locked "${features[@]}" --lib --bins --tests && cargo test --locked "${features[@]}" --doc; } 2>&1 |
  tee "$log" || status=$?

awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
