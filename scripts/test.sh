#!/usr/bin/env bash
# Runs every test: the dashboard's browser tests (Debian's Chromium driven by
# playwright-core) and the whole Rust workspace. Fetches the demo model first
# so that the local-model tests run instead of skipping, and installs
# Chromium with apt-get when it is missing and we are root. Ends with one
# summary line for all of them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/fetch-model.sh

if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq chromium >/dev/null
    else
        echo "test.sh: the browser tests need Debian's chromium: sudo apt-get install chromium" >&2
        exit 1
    fi
fi
command -v npm >/dev/null || { echo "test.sh: the browser tests need Node.js and npm" >&2; exit 1; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "== browser tests (tests/e2e)"
npm ci --prefix tests/e2e --no-audit --no-fund --silent
cargo build -p astrbot-rs -p fake-openai
set +e
ASTRBOT_BIN=target/debug/astrbot-rs node --test tests/e2e/ 2>&1 | tee "$log"
browser_status=${PIPESTATUS[0]}

echo "== cargo test --workspace"
cargo test --workspace "$@" 2>&1 | tee -a "$log"
cargo_status=${PIPESTATUS[0]}
set -e

awk '/^test result:/ {
        for (i = 1; i <= NF; i++) {
            if ($(i + 1) ~ /^passed;/) passed += $i
            if ($(i + 1) ~ /^failed;/) failed += $i
            if ($(i + 1) ~ /^ignored;/) ignored += $i
        }
     }
     /^# pass / { passed += $3 }
     /^# fail / { failed += $3 }
     /^# skipped / { ignored += $3 }
     END { printf "tests: %d passed, %d failed, %d skipped\n", passed, failed, ignored }' "$log"
[ "$browser_status" = 0 ] && [ "$cargo_status" = 0 ]
