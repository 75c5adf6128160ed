#!/usr/bin/env bash
# bench/smoke.sh [--release]: a few-second check that the benchmark tooling
# works: every loadgen mode runs with tiny numbers against a debug (default)
# or release build, and the script fails if any mode reports an error.
# Everything runs on 127.0.0.1 and is killed on exit.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PROFILE=debug
case "${1:-}" in
    --release) PROFILE=release ;;
    "") ;;
    *) echo "usage: bench/smoke.sh [--release]" >&2; exit 2 ;;
esac

# shellcheck source=bench/lib.sh
. bench/lib.sh

build_binaries "$PROFILE"
setup_work

start_fake fast --tokens 10
FAST_URL=$FAKE_URL
start_fake slow --first-token-ms 300 --token-ms 20 --tokens 5
SLOW_URL=$FAKE_URL

ROOT_A="$WORK/root-a"
KEY_A=$(make_root "$ROOT_A" "$FAST_URL")
PORT_A=$("$LOADGEN" free-port)
start_server "$ROOT_A" "$PORT_A" server-a
BASE_A="http://127.0.0.1:$PORT_A"

ROOT_B="$WORK/root-b"
KEY_B=$(make_root "$ROOT_B" "$SLOW_URL")
PORT_B=$("$LOADGEN" free-port)
T0=$EPOCHREALTIME
start_server "$ROOT_B" "$PORT_B" server-b
PID_B=$SERVER_PID
BASE_B="http://127.0.0.1:$PORT_B"

failed=0
runs=0
# run MODE ARGS...: one loadgen run; fails the smoke on a reported error,
# and on a result line without the load generator's CPU figure.
run() {
    runs=$((runs + 1))
    log "loadgen $*"
    if ! "$LOADGEN" "$@" | tee "$WORK/run-$runs.json"; then
        echo "FAILED: loadgen $1" >&2
        failed=1
    elif [ "$1" != wait ] && ! jq -e '.cpu_s != null' "$WORK/run-$runs.json" >/dev/null; then
        echo "FAILED: loadgen $1 reported no cpu_s" >&2
        failed=1
    fi
}

run wait --url "$BASE_A/api/v1/im/bots" --key "$KEY_A" --timeout-secs 30
run wait --url "$BASE_B/api/v1/im/bots" --key "$KEY_B" --since-epoch "$T0" --timeout-secs 30
run json --url "$BASE_A/api/v1/im/bots" --key "$KEY_A" --concurrency 2 --duration-secs 1 --timeout-secs 10
run upstream --url "$FAST_URL" --concurrency 2 --messages 3 --timeout-secs 10
run chat --url "$BASE_A" --key "$KEY_A" --concurrency 2 --messages 3 --session-messages 2 --timeout-secs 10
run chat --url "$BASE_A" --key "$KEY_A" --concurrency 2 --messages 1 --provider fake --timeout-secs 10
# Paced: 2 clients, 3 messages each at 20 streams/s in all, so the run must
# take at least the 0.25 s its last slot is scheduled at.
run chat --url "$BASE_A" --key "$KEY_A" --concurrency 2 --messages 3 --rate 20 --timeout-secs 10
if ! jq -e '.rate == 20 and .elapsed_s >= 0.25' "$WORK/run-$runs.json" >/dev/null; then
    echo "FAILED: the paced chat run did not keep to its schedule" >&2
    failed=1
fi
run upload --url "$BASE_A" --key "$KEY_A" --concurrency 2 --uploads 2 --size-mb 0.2 --timeout-secs 10
run hold --url "$BASE_B" --key "$KEY_B" --streams 5 --rss-pid "$PID_B" --timeout-secs 10
run hold --url "$BASE_B" --key "$KEY_B" --streams 6 --http2 --connections 2 --provider fake \
    --rss-pid "$PID_B" --timeout-secs 10

PORT_C=$("$LOADGEN" free-port)
"$LOADGEN" ceiling --port "$PORT_C" --provider "$FAST_URL" >"$WORK/ceiling.out" 2>"$WORK/ceiling.err" &
PIDS+=("$!")
run wait --url "http://127.0.0.1:$PORT_C/api/v1/im/bots" --timeout-secs 10
run json --url "http://127.0.0.1:$PORT_C/api/v1/im/bots" --concurrency 2 --duration-secs 1 --timeout-secs 10
# The minimal relay: the chat client checks its text like astrbot-rs's.
run chat --url "http://127.0.0.1:$PORT_C" --concurrency 2 --messages 3 --timeout-secs 10

if [ "$failed" != 0 ]; then
    echo "bench smoke: FAILED" >&2
    for log_file in "$WORK"/server-*.log; do
        echo "--- $log_file (last 20 lines)" >&2
        tail -n 20 "$log_file" >&2
    done
    exit 1
fi
echo "bench smoke: ok" >&2
