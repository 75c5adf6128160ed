#!/usr/bin/env bash
# Runs every test of the workspace. Fetches the demo model first so that the
# local-model tests run instead of skipping.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/fetch-model.sh
cargo test --workspace "$@"
