#!/usr/bin/env bash
# bench/profile.sh json|chat [SECONDS]: where astrbot-rs spends its CPU under
# one workload, with `perf`.
#
# Starts a fake provider (instant, 50 tokens) and a release astrbot-rs on a
# temp root, drives it with loadgen (json: GET /api/v1/im/bots at 64
# clients; chat: streamed chat at 128 clients, four messages per session),
# records the server with `perf record` for SECONDS (default 5) and prints
# the top of the report, by shared object and by symbol (self and
# children), plus the CPU seconds the server, the fake and loadgen used.
# Call graphs are unwound from DWARF: the release build keeps no frame
# pointers, so `-g` alone loses most callers and the "children" column.
# The raw profile is kept as perf.data in the current folder for
# `perf report`. Needs `perf` (Debian: linux-perf) and permission to
# profile your own processes.
set -euo pipefail
export LC_ALL=C
HERE=$(pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/.."

WORKLOAD=${1:-}
SECS=${2:-5}
case "$WORKLOAD" in
    json | chat) ;;
    *) echo "usage: bench/profile.sh json|chat [SECONDS]" >&2; exit 2 ;;
esac
command -v perf >/dev/null || { echo "perf is not installed (Debian: apt-get install linux-perf)" >&2; exit 1; }

# shellcheck source=bench/lib.sh
. bench/lib.sh

build_binaries
setup_work

start_fake fast --tokens 50
ROOT="$WORK/root"
KEY=$(make_root "$ROOT" "$FAKE_URL")
PORT=$("$LOADGEN" free-port)
start_server "$ROOT" "$PORT" server
BASE="http://127.0.0.1:$PORT"
"$LOADGEN" wait --url "$BASE/api/v1/im/bots" --key "$KEY" --timeout-secs 30 >/dev/null

# cpu_ticks PID: user + system time of PID so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICKS=$(getconf CLK_TCK)

# The load runs a little longer than the recording on both sides.
case "$WORKLOAD" in
    json) LOAD=(json --url "$BASE/api/v1/im/bots" --key "$KEY" --concurrency 64 --duration-secs $((SECS + 2))) ;;
    # Four messages per session, as in bench/compare.sh, however long the
    # run: longer conversations would make the profile about history size.
    chat) LOAD=(chat --url "$BASE" --key "$KEY" --concurrency 128 --messages $(((SECS + 2) * 10)) --session-messages 4 --timeout-secs 120) ;;
esac
SERVER_BEFORE=$(cpu_ticks "$SERVER_PID")
FAKE_BEFORE=$(cpu_ticks "$FAKE_PID")
"$LOADGEN" "${LOAD[@]}" >"$WORK/load.json" 2>"$WORK/load.err" &
LOAD_PID=$!
PIDS+=("$LOAD_PID")
sleep 1
perf record -F 400 --call-graph dwarf,16384 -p "$SERVER_PID" -o "$HERE/perf.data" -- sleep "$SECS" >&2 2>"$WORK/perf.err" || {
    cat "$WORK/perf.err" >&2
    exit 1
}
wait "$LOAD_PID" || true
SERVER_CPU=$(($(cpu_ticks "$SERVER_PID") - SERVER_BEFORE))
FAKE_CPU=$(($(cpu_ticks "$FAKE_PID") - FAKE_BEFORE))

echo "## $WORKLOAD: loadgen"
cat "$WORK/load.json"
awk -v s="$SERVER_CPU" -v f="$FAKE_CPU" -v t="$TICKS" -v l="$(jq -r '.cpu_s // "n/a"' "$WORK/load.json")" \
    'BEGIN { printf "CPU seconds during the run: server %.2f, fake provider %.2f, loadgen %s\n", s / t, f / t, l }'
echo
# top N PERF-REPORT-ARGS...: the first N lines of a report that carry a
# percentage. `head` closes the pipe early, so the pipeline's status is not
# perf's and is ignored.
top() {
    local lines=$1
    shift
    perf report -i "$HERE/perf.data" --stdio -g none "$@" 2>/dev/null | grep '%' | head -n "$lines" | cut -c1-140 || true
}

echo "## By shared object"
top 8 --no-children --sort dso
echo
echo "## By symbol, self time"
top 25 --no-children --sort symbol
echo
echo "## By thread name (tokio workers, SQLite worker threads)"
top 6 --no-children --sort comm
echo
echo "## By symbol, with children (user space)"
top 60 --children --sort symbol | grep -v '\[k\]' | head -n 25 || true
