#!/usr/bin/env bash
# bench/run.sh [--write]: the astrbot-rs benchmark.
#
# Builds release binaries, starts fake OpenAI-compatible providers and
# astrbot-rs servers on 127.0.0.1 (temp data roots, no models/ folder, so the
# local demo model is never involved), drives them with bench/loadgen and
# prints a Markdown report. With --write the results section of
# docs/benchmarks.md (between the results markers) is replaced by it.
#
# Knobs (environment): BENCH_JSON_SECS (default 5), BENCH_CHAT_MESSAGES_1 /
# _16 / _128 (messages per client, defaults 100 / 20 / 5), BENCH_HOLD_STREAMS
# (default 1000). Everything the script starts is killed on exit.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "${BASH_SOURCE[0]}")/.."

WRITE=0
for arg in "$@"; do
    case "$arg" in
        --write) WRITE=1 ;;
        -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done

JSON_SECS=${BENCH_JSON_SECS:-5}
CHAT_M1=${BENCH_CHAT_MESSAGES_1:-100}
CHAT_M16=${BENCH_CHAT_MESSAGES_16:-20}
CHAT_M128=${BENCH_CHAT_MESSAGES_128:-5}
HOLD_STREAMS=${BENCH_HOLD_STREAMS:-1000}

# shellcheck source=bench/lib.sh
. bench/lib.sh

build_binaries

# Many open streams need many file descriptors (client, gateway, provider).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true
log "open-file limit: $(ulimit -n)"

setup_work
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# result NAME LOADGEN-ARGS...: runs loadgen, keeps its JSON line in
# $WORK/NAME.json (the human summary goes to stderr).
result() {
    local name=$1
    shift
    log "loadgen $1 ($name)"
    if ! "$LOADGEN" "$@" >"$WORK/$name.json"; then
        echo "loadgen $name reported errors (see above)" >&2
    fi
}

# ---- fast provider and the main server ------------------------------------
start_fake fast --tokens 50
FAST_URL=$FAKE_URL
log "fast fake provider at $FAST_URL"

ROOT_A="$WORK/root-a"
KEY_A=$(make_root "$ROOT_A" "$FAST_URL")
PORT_A=$("$LOADGEN" free-port)
start_server "$ROOT_A" "$PORT_A" server-a
PID_A=$SERVER_PID
BASE_A="http://127.0.0.1:$PORT_A"
"$LOADGEN" wait --url "$BASE_A/api/v1/im/bots" --key "$KEY_A" --timeout-secs 30 >/dev/null
sleep 2
IDLE_RSS_A=$(rss_kib "$PID_A")
log "server A idle RSS: $IDLE_RSS_A KiB"

# ---- cold start: a second, fresh root and server -----------------------------
start_fake slow --first-token-ms 5000 --token-ms 50 --tokens 20
SLOW_URL=$FAKE_URL
ROOT_B="$WORK/root-b"
KEY_B=$(make_root "$ROOT_B" "$SLOW_URL")
PORT_B=$("$LOADGEN" free-port)
T0=$EPOCHREALTIME
start_server "$ROOT_B" "$PORT_B" server-b
PID_B=$SERVER_PID
BASE_B="http://127.0.0.1:$PORT_B"
"$LOADGEN" wait --url "$BASE_B/api/v1/im/bots" --key "$KEY_B" --since-epoch "$T0" \
    --timeout-secs 30 >"$WORK/coldstart.json"
log "cold start: $(jq -r .ready_ms "$WORK/coldstart.json") ms"

# ---- JSON endpoint ------------------------------------------------------------
for c in 1 16 64; do
    result "json-$c" json --url "$BASE_A/api/v1/im/bots" --key "$KEY_A" \
        --concurrency "$c" --duration-secs "$JSON_SECS" --timeout-secs 10
done

# ---- streamed chat: the fake alone, then through the gateway ---------------------
for c in 1 16 128; do
    m_var="CHAT_M$c"
    m=${!m_var}
    result "upstream-$c" upstream --url "$FAST_URL" --concurrency "$c" --messages "$m" \
        --timeout-secs 30
    result "chat-$c" chat --url "$BASE_A" --key "$KEY_A" --concurrency "$c" --messages "$m" \
        --timeout-secs 30
done
LOADED_RSS_A=$(rss_kib "$PID_A")

# ---- many open streams against the slow provider --------------------------------
sleep 1
result hold hold --url "$BASE_B" --key "$KEY_B" --streams "$HOLD_STREAMS" --rss-pid "$PID_B" \
    --timeout-secs 120

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report -------------------------------------------------------------------------
j() { jq -r "$2 // \"n/a\"" "$WORK/$1.json" 2>/dev/null || echo "n/a"; }
mib() { awk -v k="$1" 'BEGIN { if (k == "" || k == "null" || k == "n/a") print "n/a"; else printf "%.1f", k / 1024 }'; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a") print "n/a"; else printf "%.3f", a - b }'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || a == "") print "not measured"; else if (a < b) print "**met**"; else print "**not met**" }'; }

ADDED_1=$(sub "$(j chat-1 .first_text_p50_ms)" "$(j upstream-1 .first_text_p50_ms)")
# The fake answers instantly, so a fake-alone p50 above 20 ms means the
# baseline itself is stalled (e.g. Nagle + delayed ACK, about 40 ms) and the
# difference says little about the gateway.
ADDED_VERDICT=$(awk -v base="$(j upstream-1 .first_text_p50_ms)" -v added="$ADDED_1" 'BEGIN {
    if (base == "n/a" || added == "n/a") print "not measured";
    else if (base > 20) print "**inconclusive**: the provider-alone baseline is stalled (see notes)";
    else if (added < 2) print "**met**"; else print "**not met**" }')
IDLE_MIB=$(mib "$IDLE_RSS_A")
HOLD_BEFORE=$(j hold .rss_before_kib)
HOLD_OPEN=$(j hold .rss_all_open_kib)
HOLD_PEAK=$(j hold .rss_peak_kib)
PER_STREAM=$(awk -v a="$HOLD_PEAK" -v b="$HOLD_BEFORE" -v n="$HOLD_STREAMS" \
    'BEGIN { if (a == "n/a" || b == "n/a") print "n/a"; else printf "%.1f", (a - b) / n }')

report() {
    echo "Run: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(uname -sr)."
    echo "Load average (1/5/15 min) at start: $LOAD_START; at end: $LOAD_END."
    echo "The load generator, the fake providers and the server share these cores."
    echo
    echo "### Targets"
    echo
    echo "| Target | Measured | Result |"
    echo "|---|---|---|"
    echo "| Gateway adds < 2 ms p50 to a streamed chat's first text delta (1 client) | $ADDED_1 ms (astrbot-rs $(j chat-1 .first_text_p50_ms) ms, fake alone $(j upstream-1 .first_text_p50_ms) ms) | $ADDED_VERDICT |"
    echo "| Idle RSS < 15 MB (15 × 10⁶ bytes, 14.3 MiB) | $IDLE_MIB MiB | $(lt "$IDLE_RSS_A" 14648.4) |"
    echo
    echo "### Memory and start-up"
    echo
    echo "| Measure | Value |"
    echo "|---|---|"
    echo "| Idle RSS (server started, 2 s, no traffic) | $IDLE_MIB MiB |"
    echo "| RSS after all JSON and chat runs | $(mib "$LOADED_RSS_A") MiB |"
    echo "| Cold start to first 200 from \`GET /api/v1/im/bots\` | $(j coldstart .ready_ms) ms |"
    echo "| RSS of a fresh server before the hold run | $(mib "$HOLD_BEFORE") MiB |"
    echo "| RSS while all $HOLD_STREAMS streams were open (peak) | $(mib "$HOLD_OPEN") MiB |"
    echo "| RSS peak during the hold run | $(mib "$HOLD_PEAK") MiB (~$PER_STREAM KiB per stream) |"
    echo "| Hold run: streams open at once / errors | $(j hold .max_open) / $(j hold .errors) (in $(j hold .elapsed_s) s) |"
    echo
    echo "### \`GET /api/v1/im/bots\` (${JSON_SECS} s per row)"
    echo
    echo "| Clients | Requests/s | p50 ms | p90 ms | p99 ms | Requests | Errors |"
    echo "|---:|---:|---:|---:|---:|---:|---:|"
    for c in 1 16 64; do
        echo "| $c | $(j "json-$c" .per_sec) | $(j "json-$c" .total_p50_ms) | $(j "json-$c" .total_p90_ms) | $(j "json-$c" .total_p99_ms) | $(j "json-$c" .ok) | $(j "json-$c" .errors) |"
    done
    echo
    echo "### Streamed chat, 50 tokens, provider answering instantly"
    echo
    echo "\`chat\` is astrbot-rs (\`POST /api/v1/chat\`, SSE to \`end\`); \`fake\` is the same workload straight"
    echo "against the fake provider's \`/v1/chat/completions\`. \"Added\" is chat p50 minus fake p50 of the time"
    echo "to the first text delta. Latencies in ms."
    echo
    echo "| Clients | Streams | Target | Streams/s | First event p50 | First text p50 | p90 | p99 | Total p50 | Total p99 | Errors | Added p50 |"
    echo "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for c in 1 16 128; do
        added=$(sub "$(j "chat-$c" .first_text_p50_ms)" "$(j "upstream-$c" .first_text_p50_ms)")
        for t in upstream chat; do
            n="$t-$c"
            label=$([ "$t" = chat ] && echo astrbot-rs || echo fake)
            echo "| $c | $(j "$n" .ok) | $label | $(j "$n" .per_sec) | $(j "$n" .first_event_p50_ms) | $(j "$n" .first_text_p50_ms) | $(j "$n" .first_text_p90_ms) | $(j "$n" .first_text_p99_ms) | $(j "$n" .total_p50_ms) | $(j "$n" .total_p99_ms) | $(j "$n" .errors) | $([ "$t" = chat ] && echo "$added" || echo "") |"
        done
    done
}

REPORT=$(report)
echo "$REPORT"

if [ "$WRITE" = 1 ]; then
    DOC=docs/benchmarks.md
    if ! grep -q '<!-- results:start -->' "$DOC" || ! grep -q '<!-- results:end -->' "$DOC"; then
        echo "$DOC has no results markers; not written" >&2
        exit 1
    fi
    printf '%s\n' "$REPORT" >"$WORK/report.md"
    awk -v report="$WORK/report.md" '
        /<!-- results:start -->/ { print; while ((getline line < report) > 0) print line; skip = 1; next }
        /<!-- results:end -->/ { skip = 0 }
        !skip { print }
    ' "$DOC" >"$WORK/doc.md"
    cp "$WORK/doc.md" "$DOC"
    log "wrote $DOC"
fi
