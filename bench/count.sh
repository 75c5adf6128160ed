#!/usr/bin/env bash
# bench/count.sh [BIN_DIR...]: instructions astrbot-rs executes per streamed
# chat and per `GET /api/v1/im/bots`, counted by valgrind (callgrind).
#
# CPU time on a shared machine moves by up to a fifth from run to run; an
# instruction count moves by well under 1 %, so two builds can be told apart in
# a minute. Each BIN_DIR holds an astrbot-rs release binary (default: this
# tree's, built first); fake-openai and loadgen always come from this tree.
# For each build: a fake provider (instant, 50 tokens) and the server on a
# temp root, the server under callgrind; a warm-up, then the counters are
# zeroed, CHAT_CLIENTS clients send CHAT_MESSAGES messages each (four per
# session) and the counters are read; then the same for JSON_SECS seconds
# of `GET /api/v1/im/bots` at 16 clients. Only user-space instructions are
# counted, not the kernel's work for the system calls they make, and an
# instruction is not a fixed amount of time: the count tells builds apart,
# the CPU figures of bench/run.sh and bench/compare.sh say what it costs.
# With COUNT_TOP=N (default 15) the first build's N most expensive
# functions under chat (self instructions) follow the table.
#
# Knobs: COUNT_CHAT_CLIENTS (16), COUNT_CHAT_MESSAGES (20), COUNT_JSON_SECS
# (3), COUNT_TOP (15), COUNT_KEEP (a folder to keep the dumps in, as
# chat-N.cg and json-N.cg, for `callgrind_annotate --tree=caller`),
# COUNT_FAKE_ARGS (more options for the fake provider, e.g. --obfuscation
# for chunks padded as OpenAI pads them). Needs valgrind (Debian: apt-get
# install valgrind).
set -euo pipefail
export LC_ALL=C
HERE=$(pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CHAT_CLIENTS=${COUNT_CHAT_CLIENTS:-16}
CHAT_MESSAGES=${COUNT_CHAT_MESSAGES:-20}
JSON_SECS=${COUNT_JSON_SECS:-3}
TOP=${COUNT_TOP:-15}
command -v valgrind >/dev/null || { echo "valgrind is not installed (Debian: apt-get install valgrind)" >&2; exit 1; }

# shellcheck source=bench/lib.sh
. bench/lib.sh

case "${COUNT_KEEP:-/}" in /*) ;; *) COUNT_KEEP="$HERE/$COUNT_KEEP" ;; esac
builds_under_test "$HERE" "$@"
setup_work

read -ra fake_args <<<"${COUNT_FAKE_ARGS:-}"
start_fake fast --tokens 50 "${fake_args[@]}"

# counted NAME: the instructions counted since the last zeroing, dumped to
# $WORK/NAME.cg (callgrind writes each dump next to its main output file,
# and the dump is complete once its `totals:` line is there).
counted() {
    local name=$1 before dump
    before=$(ls "$WORK"/cg.out.* 2>/dev/null | wc -l)
    callgrind_control --dump="$name" "$SERVER_PID" >/dev/null 2>&1
    for _ in $(seq 1 1500); do
        dump=$(ls -t "$WORK"/cg.out.* 2>/dev/null | head -1)
        if [ "$(ls "$WORK"/cg.out.* 2>/dev/null | wc -l)" -gt "$before" ] && grep -q '^totals:' "$dump"; then
            mv "$dump" "$WORK/$name.cg"
            awk '/^totals:/ { print $2; exit }' "$WORK/$name.cg"
            return 0
        fi
        sleep 0.02
    done
    echo "callgrind did not dump $name" >&2
    exit 1
}

# per_item INSTRUCTIONS LOADGEN-JSON-FILE: instructions per successful request.
per_item() { awk -v ir="$1" -v n="$(jq -r .ok "$2")" 'BEGIN { printf "%.0f", (n > 0) ? ir / n : 0 }'; }

ROWS=()
index=0
for dir in "${BUILDS[@]}"; do
    index=$((index + 1))
    root="$WORK/root-$index"
    # The root and its key are made by the build under test, which may be
    # older than this tree's.
    key=$(BIN="$dir" make_root "$root" "$FAKE_URL") ||
        fail_showing "$dir/astrbot-rs could not create an API key" "$root/apikey.err"
    port=$("$LOADGEN" free-port)
    env -u ASTRBOT_LOCAL_MODEL valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out.%p" \
        "$dir/astrbot-rs" --root "$root" serve --host 127.0.0.1 --port "$port" >"$WORK/server-$index.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    base="http://127.0.0.1:$port"
    # Up to two minutes (valgrind starts slowly), but no longer than the
    # server lives.
    for attempt in $(seq 1 120); do
        "$LOADGEN" wait --url "$base/api/v1/im/bots" --key "$key" --timeout-secs 1 >/dev/null 2>&1 && break
        kill -0 "$SERVER_PID" 2>/dev/null || fail_showing "the server in $dir stopped" "$WORK/server-$index.log"
        [ "$attempt" -lt 120 ] || fail_showing "the server in $dir did not answer" "$WORK/server-$index.log"
    done
    log "build $index ($dir): warm-up"
    "$LOADGEN" chat --url "$base" --key "$key" --concurrency "$CHAT_CLIENTS" --messages 4 \
        --session-messages 4 --timeout-secs 300 >/dev/null 2>&1

    callgrind_control --zero "$SERVER_PID" >/dev/null 2>&1
    "$LOADGEN" chat --url "$base" --key "$key" --concurrency "$CHAT_CLIENTS" \
        --messages "$CHAT_MESSAGES" --session-messages 4 --timeout-secs 300 \
        >"$WORK/chat-$index.json" 2>"$WORK/chat-$index.err" ||
        fail_showing "the chat run reported errors" "$WORK/chat-$index.err"
    chat_ir=$(counted "chat-$index")

    callgrind_control --zero "$SERVER_PID" >/dev/null 2>&1
    "$LOADGEN" json --url "$base/api/v1/im/bots" --key "$key" --concurrency 16 \
        --duration-secs "$JSON_SECS" --timeout-secs 60 \
        >"$WORK/json-$index.json" 2>"$WORK/json-$index.err" ||
        fail_showing "the JSON run reported errors" "$WORK/json-$index.err"
    json_ir=$(counted "json-$index")
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true

    ROWS+=("| $index | \`$dir\` | $(per_item "$chat_ir" "$WORK/chat-$index.json") | $(jq -r .ok "$WORK/chat-$index.json") | $(per_item "$json_ir" "$WORK/json-$index.json") | $(jq -r .ok "$WORK/json-$index.json") |")
done

echo "Instructions executed by astrbot-rs in user space (callgrind), $(date -u '+%Y-%m-%d %H:%M UTC')."
echo "Chat: $CHAT_CLIENTS clients, $CHAT_MESSAGES messages each, four per session, the provider answering instantly in 50 tokens${COUNT_FAKE_ARGS:+ (fake provider options: $COUNT_FAKE_ARGS)}."
echo "JSON: \`GET /api/v1/im/bots\` at 16 clients for $JSON_SECS s."
echo
echo "| Build | Binary folder | Per chat stream | Streams | Per JSON request | Requests |"
echo "|---:|---|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
if [ -n "${COUNT_KEEP:-}" ]; then
    mkdir -p "$COUNT_KEEP"
    cp "$WORK"/*.cg "$COUNT_KEEP"/
fi
if [ "$TOP" -gt 0 ]; then
    echo
    echo "Build 1, chat: the $TOP functions with the most instructions of their own"
    echo
    echo '```'
    callgrind_annotate --inclusive=no --threshold=100 --auto=no "$WORK/chat-1.cg" 2>/dev/null |
        # Thread entry points and the runtime's loops show every call
        # below them as their own (recursion); a share over half is one.
        awk '/^ *[0-9,]+ \( *[0-9.]+%\) / && !/PROGRAM TOTALS/ { share = $2 $3; gsub(/[(%)]/, "", share); if (share + 0 < 50) print }' |
        head -n "$TOP" |
        sed -E 's/ \[[^]]*\]$//' | cut -c1-150 || true
    echo '```'
fi
