#!/usr/bin/env bash
# bench/compare.sh [--write]: astrbot-rs side by side with the real AstrBot 4.18.0.
#
# Installs AstrBot 4.18.0 into a virtualenv (../shared/peer/astrbot/install.sh,
# in the background while the release binaries build), starts one fake
# OpenAI-compatible provider (instant, 50 tokens), gives both servers the same
# config pointing at it, starts AstrBot (../shared/peer/astrbot/start.sh),
# astrbot-rs (release) and the ceiling (`loadgen ceiling`, a bare axum route),
# logs in to each and creates an API key through the admin API, then runs the
# same workloads against each in alternation (A B A B, two rounds) and prints a
# Markdown table. With --write it replaces the compare section of
# docs/benchmarks.md (between the compare markers).
#
# Knobs (environment): COMPARE_JSON_SECS (default 5), COMPARE_CHAT_MESSAGES_1
# (default 5), COMPARE_CHAT_MESSAGES_16 (default 2), ASTRBOT_VENV (the venv,
# default ~/.cache/astrbot-4.18.0). Everything listens on 127.0.0.1 and is
# killed on exit. Not run in CI.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "${BASH_SOURCE[0]}")/.."

WRITE=0
for arg in "$@"; do
    case "$arg" in
        --write) WRITE=1 ;;
        -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done

JSON_SECS=${COMPARE_JSON_SECS:-5}
CHAT_M1=${COMPARE_CHAT_MESSAGES_1:-5}
CHAT_M16=${COMPARE_CHAT_MESSAGES_16:-2}
PEER=../shared/peer/astrbot
PASSWORD_MD5=77b90590a8945a7d36c963981a307dc9 # MD5 of "astrbot", AstrBot's default

# shellcheck source=bench/lib.sh
. bench/lib.sh

setup_work

# Kills every recorded process and its descendants: SIGTERM, up to 10 s, then
# SIGKILL. Overrides lib.sh's cleanup (the trap calls it by name).
descendants() {
    ps -e -o pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2 }
        END {
            # "in" tests never create array elements, so only real
            # descendants of root end up in want.
            if (!(root in parent)) exit
            want[root] = 1
            for (round = 0; round < 10; round++)
                for (p in parent) if ((parent[p] in want) && !(p in want)) want[p] = 1
            for (p in want) if (p != root) print p
        }' | safe_pids
}

# Passes on only PIDs that can belong to this run: never 0, 1, or this
# shell itself.
safe_pids() {
    local pid
    while read -r pid; do
        [[ "$pid" =~ ^[0-9]+$ ]] && [ "$pid" -gt 1 ] && [ "$pid" != "$$" ] && echo "$pid"
    done
    return 0
}
cleanup() {
    local all=() pid
    for pid in $(printf '%s\n' "${PIDS[@]}" | safe_pids); do
        all+=("$pid")
        while read -r child; do all+=("$child"); done < <(descendants "$pid" 2>/dev/null || true)
    done
    for pid in "${all[@]}"; do kill "$pid" 2>/dev/null || true; done
    for _ in $(seq 1 100); do
        local alive=0
        for pid in "${all[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for pid in "${all[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}

# stop PID: stops one server started here (and its descendants).
stop() {
    local pid child
    pid=$(echo "$1" | safe_pids)
    [ -n "$pid" ] || return 0
    for child in $(descendants "$pid"); do kill "$child" 2>/dev/null || true; done
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# tree_rss_kib PID: VmRSS of PID plus all its descendants.
tree_rss_kib() {
    local total=0 pid rss
    for pid in "$1" $(descendants "$1"); do
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
        total=$((total + ${rss:-0}))
    done
    echo "$total"
}

# ---- install AstrBot in the background, build ours meanwhile ---------------------
log "installing AstrBot 4.18.0 (background; log in $WORK/install.log)"
"$PEER/install.sh" >"$WORK/install.log" 2>&1 &
INSTALL_PID=$!
PIDS+=("$INSTALL_PID")

log "building release binaries"
cargo build --release -p astrbot-rs -p fake-openai -p astrbot-loadgen >&2
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
BIN="$TARGET_DIR/release"
LOADGEN="$BIN/loadgen"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true

log "waiting for the AstrBot install"
if ! wait "$INSTALL_PID"; then
    echo "AstrBot install failed: $PEER/install.sh" >&2
    cat "$WORK/install.log" >&2
    exit 1
fi
cat "$WORK/install.log" >&2
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the provider and the configs ----------------------------------------------------
# A fixed answer: AstrBot adds a "<system_reminder>Current datetime ...</system_reminder>"
# part to the user message, so the fake's default echo would differ between the
# two servers. Both get this text in 50 tokens, and loadgen checks for it.
ANSWER="Fixed benchmark answer: the quick brown fox jumps over the lazy dog, then over the sleepy cat, then home again."
start_fake fast --tokens 50 --text "$ANSWER"
FAST_URL=$FAKE_URL
log "fake provider at $FAST_URL"

write_config() {
    mkdir -p "$1/data"
    cat >"$1/data/cmd_config.json" <<JSON
{
  "provider_sources": [
    {"id": "src", "provider": "openai", "type": "openai_chat_completion",
     "provider_type": "chat_completion", "enable": true, "key": ["sk-local"],
     "api_base": "$FAST_URL", "timeout": 60, "proxy": "",
     "custom_headers": {}}
  ],
  "provider": [
    {"id": "fake", "provider_source_id": "src", "model": "fake-model",
     "modalities": ["text", "image", "tool_use"], "custom_extra_body": {},
     "max_context_tokens": 0, "enable": true}
  ],
  "provider_settings": {"default_provider_id": "fake", "streaming_response": false},
  "platform": [],
  "http_proxy": "",
  "dashboard": {"host": "127.0.0.1"}
}
JSON
}

ROOT_PY="$WORK/astrbot"
ROOT_RS="$WORK/astrbot-rs"
write_config "$ROOT_PY"
write_config "$ROOT_RS"
PORT_PY=$("$LOADGEN" free-port)
PORT_RS=$("$LOADGEN" free-port)
BASE_PY="http://127.0.0.1:$PORT_PY"
BASE_RS="http://127.0.0.1:$PORT_RS"

# start NAME: starts that server on its root and port; sets SERVER_PID.
start() {
    case "$1" in
        astrbot)
            "$PEER/start.sh" "$ROOT_PY" "$PORT_PY" >>"$WORK/astrbot.log" 2>&1 &
            ;;
        astrbot-rs)
            env -u ASTRBOT_LOCAL_MODEL "$BIN/astrbot-rs" --root "$ROOT_RS" serve \
                --host 127.0.0.1 --port "$PORT_RS" >>"$WORK/astrbot-rs.log" 2>&1 &
            ;;
    esac
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
}

# login BASE: polls POST /api/auth/login (up to 120 s); prints the token.
login() {
    local token
    for _ in $(seq 1 600); do
        token=$(curl -s -m 5 -X POST "$1/api/auth/login" -H 'Content-Type: application/json' \
            -d "{\"username\":\"astrbot\",\"password\":\"$PASSWORD_MD5\"}" 2>/dev/null |
            jq -r '.data.token // empty' 2>/dev/null || true)
        if [ -n "$token" ]; then
            echo "$token"
            return 0
        fi
        sleep 0.2
    done
    return 1
}

# create_key BASE TOKEN: prints a new API key made through the admin API.
create_key() {
    curl -s -m 30 -X POST "$1/api/apikey/create" -H 'Content-Type: application/json' \
        -H "Authorization: Bearer $2" \
        -d '{"name":"bench","scopes":["chat","file","im","config"]}' | jq -r '.data.api_key // empty'
}

# first_start NAME BASE VAR: first start, login, a key (stored in VAR); then
# stopped again. (Not in a $(...) subshell, so the exit trap still sees its PID.)
first_start() {
    local name=$1 base=$2 var=$3 token key
    log "first start of $name"
    start "$name"
    if ! token=$(login "$base"); then
        echo "$name: login failed or it never answered; last log lines:" >&2
        tail -n 40 "$WORK/$name.log" >&2
        exit 1
    fi
    key=$(create_key "$base" "$token")
    if [ -z "$key" ]; then
        echo "$name: POST /api/apikey/create gave no key" >&2
        exit 1
    fi
    stop "$SERVER_PID"
    printf -v "$var" '%s' "$key"
}

KEY_PY='' KEY_RS=''
first_start astrbot "$BASE_PY" KEY_PY
first_start astrbot-rs "$BASE_RS" KEY_RS

# timed_start NAME BASE KEY: restarts it (root, config and key already there) and
# measures the time to the first 200 from GET /api/v1/im/bots; sets SERVER_PID.
timed_start() {
    local name=$1 base=$2 key=$3 t0
    t0=$EPOCHREALTIME
    start "$name"
    if ! "$LOADGEN" wait --url "$base/api/v1/im/bots" --key "$key" --since-epoch "$t0" \
        --timeout-secs 120 >"$WORK/coldstart-$name.json"; then
        echo "$name did not answer GET /api/v1/im/bots; last log lines:" >&2
        tail -n 40 "$WORK/$name.log" >&2
        exit 1
    fi
    log "$name ready in $(jq -r .ready_ms "$WORK/coldstart-$name.json") ms"
}

timed_start astrbot "$BASE_PY" "$KEY_PY"
PID_PY=$SERVER_PID
timed_start astrbot-rs "$BASE_RS" "$KEY_RS"
PID_RS=$SERVER_PID

PORT_CEIL=$("$LOADGEN" free-port)
"$LOADGEN" ceiling --port "$PORT_CEIL" >"$WORK/ceiling.out" 2>"$WORK/ceiling.err" &
PIDS+=("$!")
BASE_CEIL="http://127.0.0.1:$PORT_CEIL"
"$LOADGEN" wait --url "$BASE_CEIL/api/v1/im/bots" --timeout-secs 10 >/dev/null

sleep 5
IDLE_PY=$(tree_rss_kib "$PID_PY")
IDLE_RS=$(tree_rss_kib "$PID_RS")
log "idle RSS: AstrBot $IDLE_PY KiB, astrbot-rs $IDLE_RS KiB"

# ---- workloads, A B A B ---------------------------------------------------------------
# result NAME LOADGEN-ARGS...: keeps loadgen's JSON line in $WORK/NAME.json.
result() {
    local name=$1
    shift
    log "loadgen $1 ($name)"
    if ! "$LOADGEN" "$@" >"$WORK/$name.json"; then
        echo "loadgen $name reported errors (counted in the table)" >&2
    fi
}

for round in 1 2; do
    for t in py rs; do
        base_var="BASE_${t^^}" key_var="KEY_${t^^}"
        result "json-$t-$round" json --url "${!base_var}/api/v1/im/bots" --key "${!key_var}" \
            --concurrency 64 --duration-secs "$JSON_SECS" --timeout-secs 30
    done
    result "json-ceil-$round" json --url "$BASE_CEIL/api/v1/im/bots" \
        --concurrency 64 --duration-secs "$JSON_SECS" --timeout-secs 30
    for c in 1 16; do
        m_var="CHAT_M$c"
        for t in py rs; do
            base_var="BASE_${t^^}" key_var="KEY_${t^^}"
            result "chat$c-$t-$round" chat --url "${!base_var}" --key "${!key_var}" \
                --concurrency "$c" --messages "${!m_var}" --expect-text "$ANSWER" --timeout-secs 60
        done
    done
done

sleep 2
AFTER_PY=$(tree_rss_kib "$PID_PY")
AFTER_RS=$(tree_rss_kib "$PID_RS")
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report ----------------------------------------------------------------------------------
j() { jq -r "$2 // \"n/a\"" "$WORK/$1.json" 2>/dev/null || echo "n/a"; }
mib() { awk -v k="$1" 'BEGIN { if (k == "" || k == "null" || k == "n/a" || k == 0) print "n/a"; else printf "%.1f", k / 1024 }'; }
# ratio A B [WORD]: "A/B× WORD" (whole number from 10 up), n/a if either is 0 or missing.
ratio() {
    awk -v a="$1" -v b="$2" -v word="${3:-}" 'BEGIN {
        if (a == "n/a" || b == "n/a" || a == "" || b == "" || b + 0 == 0 || a + 0 == 0) print "n/a";
        else { r = a / b; if (r >= 10) printf "%.0f× %s", r, word; else printf "%.2f× %s", r, word } }'
}
fmt() { awk -v a="$1" 'BEGIN { if (a == "n/a") print a; else printf "%.1f", a }'; }

row_json() { # round
    local r=$1 py rs ceil
    py=$(j "json-py-$r" .per_sec)
    rs=$(j "json-rs-$r" .per_sec)
    ceil=$(j "json-ceil-$r" .per_sec)
    echo "| \`GET /api/v1/im/bots\`, 64 clients, requests/s (round $r) | $(fmt "$py") | $(fmt "$rs") | $(ratio "$rs" "$py" faster) | $(fmt "$ceil") |"
    echo "| — p50 / p99 latency, ms | $(j "json-py-$r" .total_p50_ms) / $(j "json-py-$r" .total_p99_ms) | $(j "json-rs-$r" .total_p50_ms) / $(j "json-rs-$r" .total_p99_ms) | | $(j "json-ceil-$r" .total_p50_ms) / $(j "json-ceil-$r" .total_p99_ms) |"
    echo "| — errors / requests | $(j "json-py-$r" .errors) / $(j "json-py-$r" "(.ok + .errors)") | $(j "json-rs-$r" .errors) / $(j "json-rs-$r" "(.ok + .errors)") | | $(j "json-ceil-$r" .errors) / $(j "json-ceil-$r" "(.ok + .errors)") |"
}
row_chat() { # clients round
    local c=$1 r=$2 py rs
    py=$(j "chat$c-py-$r" .per_sec)
    rs=$(j "chat$c-rs-$r" .per_sec)
    echo "| Chat, $c client(s), correct streams/s (round $r) | $(fmt "$py") | $(fmt "$rs") | $(ratio "$rs" "$py" faster) | |"
    echo "| — first text p50 / stream total p50, ms | $(j "chat$c-py-$r" .first_text_p50_ms) / $(j "chat$c-py-$r" .total_p50_ms) | $(j "chat$c-rs-$r" .first_text_p50_ms) / $(j "chat$c-rs-$r" .total_p50_ms) | | |"
    echo "| — failed / all streams | $(j "chat$c-py-$r" .errors) / $(j "chat$c-py-$r" "(.ok + .errors)") | $(j "chat$c-rs-$r" .errors) / $(j "chat$c-rs-$r" "(.ok + .errors)") | | |"
}

report() {
    echo "Run: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(uname -sr)."
    echo "Load average (1/5/15 min) at start: $LOAD_START; at end: $LOAD_END."
    echo "AstrBot 4.18.0 (PyPI, $("${ASTRBOT_VENV:-$HOME/.cache/astrbot-4.18.0}/bin/python" --version 2>&1)) and astrbot-rs (release) alternate A B A B; the ceiling is \`loadgen ceiling\`, a bare axum route with the same JSON and no auth."
    echo "Chat: ${CHAT_M1} messages per client at 1 client, ${CHAT_M16} at 16; the fake provider answers instantly with one fixed text in 50 tokens; a stream counts only if its text is that answer (ratio n/a when AstrBot completed none)."
    echo
    echo "| Measure | AstrBot 4.18.0 | astrbot-rs | astrbot-rs advantage | Ceiling |"
    echo "|---|---:|---:|---:|---:|"
    for r in 1 2; do row_json "$r"; done
    for c in 1 16; do
        for r in 1 2; do row_chat "$c" "$r"; done
    done
    echo "| Idle RSS after start, MiB | $(mib "$IDLE_PY") | $(mib "$IDLE_RS") | $(ratio "$IDLE_PY" "$IDLE_RS" less) | |"
    echo "| RSS after the runs, MiB | $(mib "$AFTER_PY") | $(mib "$AFTER_RS") | $(ratio "$AFTER_PY" "$AFTER_RS" less) | |"
    echo "| Start to first 200 from \`GET /api/v1/im/bots\`, ms | $(j coldstart-astrbot .ready_ms) | $(j coldstart-astrbot-rs .ready_ms) | $(ratio "$(j coldstart-astrbot .ready_ms)" "$(j coldstart-astrbot-rs .ready_ms)" faster) | |"
}

REPORT=$(report)
echo "$REPORT"

if [ "$WRITE" = 1 ]; then
    DOC=docs/benchmarks.md
    if ! grep -q '<!-- compare:start -->' "$DOC" || ! grep -q '<!-- compare:end -->' "$DOC"; then
        echo "$DOC has no compare markers; not written" >&2
        exit 1
    fi
    printf '%s\n' "$REPORT" >"$WORK/report.md"
    awk -v report="$WORK/report.md" '
        /<!-- compare:start -->/ { print; while ((getline line < report) > 0) print line; skip = 1; next }
        /<!-- compare:end -->/ { skip = 0 }
        !skip { print }
    ' "$DOC" >"$WORK/doc.md"
    cp "$WORK/doc.md" "$DOC"
    log "wrote $DOC"
fi
