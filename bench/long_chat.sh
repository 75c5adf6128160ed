#!/usr/bin/env bash
# bench/long_chat.sh [BIN_DIR...]: what one turn costs in a long stored
# conversation: its time, the server's CPU, and the server's memory.
#
# For each build (a folder holding an astrbot-rs release binary; default
# this tree's, built first): a fake provider (instant, 50 tokens) and the
# server on a temp root. One chat creates session `long`; its conversation
# is then filled with LONG_MESSAGES messages (default 20,000, about 1.8 MB
# of JSON, under the fake's 2 MB request limit), as AstrBot stores them
# (with Python's json module, through python3's sqlite3), and LONG_TURNS
# (default 5) more turns are sent one after another with curl. Each turn
# must stream the fake's whole answer. Prints, per build: the conversation's
# size, the turns' median time and the server's CPU per turn, and the
# server's RSS before the turns, after them, and at its peak (VmHWM).
# Needs curl, jq and python3.
set -euo pipefail
export LC_ALL=C
HERE=$(pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MESSAGES=${LONG_MESSAGES:-20000}
TURNS=${LONG_TURNS:-5}
for tool in curl jq python3; do
    command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 1; }
done

# shellcheck source=bench/lib.sh
. bench/lib.sh

builds_under_test "$HERE" "$@"
setup_work
start_fake fast --tokens 50

# chat BASE KEY TEXT: one streamed turn in session `long`; fails unless the
# answer is the fake's echo of TEXT (repeated to fill its 50 tokens).
chat() {
    local body
    body=$(jq -cn --arg m "$3" '{username: "bench", session_id: "long", message: $m, enable_streaming: true}')
    curl -sfN -m 120 -H "Authorization: Bearer $2" -H 'Content-Type: application/json' \
        -d "$body" "$1/api/v1/chat" >"$WORK/turn.sse"
    local text
    text=$(sed -n 's/^data: //p' "$WORK/turn.sse" | jq -rj 'select(.type == "plain") | .data')
    case "$text" in "Echo: $3"*) ;; *) false ;; esac || fail_showing "turn \"$3\" answered \"$text\"" "$WORK/turn.sse"
}

# seed DB N: replaces every conversation's content with N messages.
seed() {
    python3 - "$1" "$2" <<'PY'
import json, sqlite3, sys
path, count = sys.argv[1], int(sys.argv[2])
messages = []
for i in range(count // 2):
    question = f"question number {i}, about something of a usual length"
    messages.append({"role": "user", "content": question})
    messages.append({"role": "assistant", "content": "Echo: " + question})
text = json.dumps(messages)
with sqlite3.connect(path) as db:
    db.execute("UPDATE conversations SET content = ?", (text,))
print(len(text))
PY
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
status_mib() { awk -v key="$2:" '$1 == key { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

echo "| Build | Conversation | Turn p50, ms | Server CPU per turn, ms | RSS before / after / peak, MiB |"
echo "|---|---:|---:|---:|---:|"
index=0
for dir in "${BUILDS[@]}"; do
    index=$((index + 1))
    root="$WORK/root-$index"
    key=$(BIN="$dir" make_root "$root" "$FAKE_URL")
    port=$("$LOADGEN" free-port)
    BIN="$dir" start_server "$root" "$port" "server-$index"
    base="http://127.0.0.1:$port"
    "$LOADGEN" wait --url "$base/api/v1/im/bots" --key "$key" --timeout-secs 30 >/dev/null ||
        fail_showing "astrbot-rs did not start" "$WORK/server-$index.log"

    chat "$base" "$key" "first"
    bytes=$(seed "$root/data/astrbot-rs.db" "$MESSAGES")
    rss_before=$(status_mib "$SERVER_PID" VmRSS)
    ticks_before=$(cpu_ticks "$SERVER_PID")
    times=()
    for turn in $(seq 1 "$TURNS"); do
        started=$(date +%s%N)
        chat "$base" "$key" "turn $turn"
        times+=($((($(date +%s%N) - started) / 1000)))
    done
    ticks=$(($(cpu_ticks "$SERVER_PID") - ticks_before))
    p50=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { printf "%.1f", a[int((NR + 1) / 2)] / 1000 }')
    cpu=$(awk -v t="$ticks" -v n="$TURNS" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t * 1000 / hz / n }')
    echo "| $dir | $MESSAGES messages, $((bytes / 1024)) KiB | $p50 | $cpu | $rss_before / $(status_mib "$SERVER_PID" VmRSS) / $(status_mib "$SERVER_PID" VmHWM) |"
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
done
