#!/usr/bin/env bash
# bench/syscalls.sh [BIN_DIR...]: system calls astrbot-rs makes per streamed
# chat, by name, counted by strace.
#
# The kernel's side of a chat (SQLite's page reads and writes and file
# locks, the sockets, waking threads) is invisible to bench/count.sh, which
# counts user-space instructions only. Each BIN_DIR holds an astrbot-rs
# release binary (default: this tree's, built first); fake-openai and
# loadgen always come from this tree. For each build: a fake provider
# (instant, 50 tokens) and the server on a temp root; a warm-up, then
# strace follows every thread of the server while CHAT_CLIENTS clients send
# CHAT_MESSAGES messages each (four per session). strace slows the server
# several times over, so only the counts mean anything, not the times.
# The table lists the TOP calls by the first build's count, then the total.
#
# Knobs: SYSCALLS_CHAT_CLIENTS (16), SYSCALLS_CHAT_MESSAGES (20),
# SYSCALLS_TOP (15). Needs strace (Debian: apt-get install strace) and
# permission to attach to the server (ptrace; root, or
# kernel.yama.ptrace_scope 0).
set -euo pipefail
export LC_ALL=C
HERE=$(pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CHAT_CLIENTS=${SYSCALLS_CHAT_CLIENTS:-16}
CHAT_MESSAGES=${SYSCALLS_CHAT_MESSAGES:-20}
TOP=${SYSCALLS_TOP:-15}
command -v strace >/dev/null || { echo "strace is not installed (Debian: apt-get install strace)" >&2; exit 1; }

# shellcheck source=bench/lib.sh
. bench/lib.sh

builds_under_test "$HERE" "$@"
setup_work

start_fake fast --tokens 50

index=0
for dir in "${BUILDS[@]}"; do
    index=$((index + 1))
    root="$WORK/root-$index"
    key=$(BIN="$dir" make_root "$root" "$FAKE_URL") ||
        fail_showing "$dir/astrbot-rs could not create an API key" "$root/apikey.err"
    port=$("$LOADGEN" free-port)
    BIN="$dir" start_server "$root" "$port" "server-$index"
    server=$SERVER_PID
    base="http://127.0.0.1:$port"
    "$LOADGEN" wait --url "$base/api/v1/im/bots" --key "$key" --timeout-secs 30 >/dev/null 2>&1 ||
        fail_showing "the server in $dir did not answer" "$WORK/server-$index.log"
    log "build $index ($dir): warm-up"
    "$LOADGEN" chat --url "$base" --key "$key" --concurrency "$CHAT_CLIENTS" --messages 4 \
        --session-messages 4 --timeout-secs 300 >/dev/null 2>&1

    strace -f -c -o "$WORK/strace-$index.txt" -p "$server" 2>"$WORK/strace-$index.err" &
    tracer=$!
    PIDS+=("$tracer")
    # strace says when it has attached to every thread; counting starts then.
    for _ in $(seq 1 500); do
        grep -q 'attached' "$WORK/strace-$index.err" 2>/dev/null && break
        kill -0 "$tracer" 2>/dev/null || fail_showing "strace could not attach to the server" "$WORK/strace-$index.err"
        sleep 0.02
    done
    "$LOADGEN" chat --url "$base" --key "$key" --concurrency "$CHAT_CLIENTS" \
        --messages "$CHAT_MESSAGES" --session-messages 4 --timeout-secs 300 \
        >"$WORK/chat-$index.json" 2>"$WORK/chat-$index.err" ||
        fail_showing "the chat run reported errors" "$WORK/chat-$index.err"
    kill -INT "$tracer"
    wait "$tracer" 2>/dev/null || true
    kill "$server"
    wait "$server" 2>/dev/null || true

    # strace -c: "% time, seconds, usecs/call, calls, [errors,] syscall";
    # the calls column is the fourth, the name the last.
    streams=$(jq -r .ok "$WORK/chat-$index.json")
    awk -v n="$streams" '$4 ~ /^[0-9]+$/ && $NF != "total" { printf "%s %.2f\n", $NF, $4 / n }' \
        "$WORK/strace-$index.txt" >"$WORK/per-stream-$index.txt"
    awk '{ sum += $2 } END { printf "total %.2f\n", sum }' "$WORK/per-stream-$index.txt" \
        >>"$WORK/per-stream-$index.txt"
    echo "$streams" >"$WORK/streams-$index.txt"
done

echo "System calls made by astrbot-rs per streamed chat (strace -c, every thread), $(date -u '+%Y-%m-%d %H:%M UTC')."
echo "Chat: $CHAT_CLIENTS clients, $CHAT_MESSAGES messages each, four per session, the provider answering instantly in 50 tokens."
echo
header="| System call |"
rule="|---|"
for i in $(seq 1 "$index"); do
    header+=" Build $i |"
    rule+="---:|"
done
echo "$header"
echo "$rule"
names=$(grep -v '^total ' "$WORK/per-stream-1.txt" | sort -k2 -rn | head -n "$TOP" | awk '{ print $1 }')
for name in $names total; do
    row="| $name |"
    for i in $(seq 1 "$index"); do
        value=$(awk -v name="$name" '$1 == name { print $2 }' "$WORK/per-stream-$i.txt")
        row+=" ${value:-0} |"
    done
    echo "$row"
done
echo
for i in $(seq 1 "$index"); do
    echo "Build $i: \`${BUILDS[$((i - 1))]}\`, $(cat "$WORK/streams-$i.txt") streams counted."
done
