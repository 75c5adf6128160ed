#!/usr/bin/env bash
# bench/compare.sh [--write]: astrbot-rs side by side with the real AstrBot 4.18.0.
#
# Installs AstrBot 4.18.0 into a virtualenv (../shared/peer/astrbot/install.sh,
# in the background while the release binaries build), starts two fake
# OpenAI-compatible providers ("fake": instant, 50 tokens, the default;
# "realistic": 300 ms to the first token, 20 ms per token, 200 tokens), gives
# both servers the same config with both, starts AstrBot
# (../shared/peer/astrbot/start.sh), astrbot-rs (release) and the ceiling
# (`loadgen ceiling`, a bare axum route), logs in to each and creates an API
# key through the admin API, stores the same chat sessions in both databases,
# then runs the same workloads against each in alternation (A B A B) and
# prints a Markdown report (targets first). Finally it holds many open
# streams against fresh astrbot-rs servers (AstrBot is not held). With
# --write it replaces the compare section of docs/benchmarks.md.
#
# Knobs (environment; defaults are the full size):
#   COMPARE_JSON_SECS (5)             seconds per im/bots, ceiling and sessions run
#   COMPARE_CHAT_MESSAGES_1 (5), COMPARE_CHAT_MESSAGES_16 (2),
#   COMPARE_CHAT_MESSAGES_128 (4)     instant chat: messages per client
#   COMPARE_PACED_RATES ("1000 2000"), COMPARE_PACED_MESSAGES (8)
#                                     instant chat at 128 clients paced at each of these
#                                     many streams/s in all (astrbot-rs and the provider
#                                     alone only; empty skips it)
#   COMPARE_SESSIONS (1000)           sessions stored for the sessions listing
#   COMPARE_UPLOAD_MB (10), COMPARE_UPLOADS (3)   file size; uploads per client
#   COMPARE_REALISTIC_CLIENTS ("128 1000")        realistic chat, one message each
#   COMPARE_REALISTIC_TIMEOUT (300)   seconds allowed per realistic stream
#   COMPARE_HOLD_H2 (10000), COMPARE_HOLD_H2_CONNECTIONS (100),
#   COMPARE_HOLD_H1 (9000)            held streams (0 skips that hold)
#   COMPARE_HOLD_WAIT_MS (30000)      the hold provider's wait before its first token
#   COMPARE_PINNED_MESSAGES (40)      also run the 128-client instant chat (this many
#                                     messages each, four per session, long enough for
#                                     steady CPU figures) with astrbot-rs on CPU 0 and the
#                                     provider and loadgen on CPU 1, to show which side
#                                     bounds streams/s (needs taskset and 2+ cores; 0
#                                     skips it)
# The holds raise net.core.netdev_max_backlog to 20,000 if allowed (and put
# it back): see "Many open streams" in docs/benchmarks.md.
#   ASTRBOT_VENV (~/.cache/astrbot-4.18.0)
#   ASTRBOT_PEER (../shared/peer/astrbot)  the folder with AstrBot's install.sh and start.sh
# Everything listens on 127.0.0.1 and is killed on exit. Not run in CI.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "${BASH_SOURCE[0]}")/.."

WRITE=0
for arg in "$@"; do
    case "$arg" in
        --write) WRITE=1 ;;
        -h | --help) sed -n '2,42p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done

JSON_SECS=${COMPARE_JSON_SECS:-5}
CHAT_M1=${COMPARE_CHAT_MESSAGES_1:-5}
CHAT_M16=${COMPARE_CHAT_MESSAGES_16:-2}
CHAT_M128=${COMPARE_CHAT_MESSAGES_128:-4}
PACED_RATES=${COMPARE_PACED_RATES-1000 2000}
PACED_M=${COMPARE_PACED_MESSAGES:-8}
SESSIONS=${COMPARE_SESSIONS:-1000}
UPLOAD_MB=${COMPARE_UPLOAD_MB:-10}
UPLOADS=${COMPARE_UPLOADS:-3}
REALISTIC_CLIENTS=${COMPARE_REALISTIC_CLIENTS:-128 1000}
REALISTIC_TIMEOUT=${COMPARE_REALISTIC_TIMEOUT:-300}
HOLD_H2=${COMPARE_HOLD_H2:-10000}
HOLD_H2_CONNECTIONS=${COMPARE_HOLD_H2_CONNECTIONS:-100}
HOLD_H1=${COMPARE_HOLD_H1:-9000}
HOLD_WAIT_MS=${COMPARE_HOLD_WAIT_MS:-30000}
PINNED_M=${COMPARE_PINNED_MESSAGES:-40}
# The pinned run moves processes to CPU 0 and CPU 1; it needs taskset
# (util-linux) and both CPUs usable here (not excluded by a cpuset).
if [ "$PINNED_M" != 0 ] && ! { taskset -c 0 true && taskset -c 1 true; } 2>/dev/null; then
    echo "pinned run skipped: it needs taskset and CPUs 0 and 1" >&2
    PINNED_M=0
fi
VENV=${ASTRBOT_VENV:-$HOME/.cache/astrbot-4.18.0}
# The scripts that install and start AstrBot live beside this repository
# (ASTRBOT_PEER to point elsewhere).
PEER=${ASTRBOT_PEER:-../shared/peer/astrbot}
if [ ! -x "$PEER/install.sh" ] || [ ! -x "$PEER/start.sh" ]; then
    echo "bench/compare.sh needs AstrBot's install.sh and start.sh in $PEER (set ASTRBOT_PEER)" >&2
    exit 1
fi
PEER=$(cd "$PEER" && pwd)
PASSWORD_MD5=77b90590a8945a7d36c963981a307dc9 # MD5 of "astrbot", AstrBot's default
SESSIONS_USER=bench-sessions
SESSIONS_PATH="/api/v1/chat/sessions?username=$SESSIONS_USER&page=1&page_size=20"
UPLOAD_CLIENTS="1 4"
# The largest and smallest realistic run (the targets speak of the largest).
REALISTIC_BIG=$(printf '%s\n' $REALISTIC_CLIENTS | sort -n | tail -n 1)

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

# stop PID: stops one process started here (and its descendants).
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

# pids_rss_kib PID...: the sum of their VmRSS (KiB); gone ones count 0.
pids_rss_kib() {
    local total=0 pid rss
    for pid in "$@"; do
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
        total=$((total + ${rss:-0}))
    done
    echo "$total"
}

# tree_rss_kib PID: VmRSS of PID plus all its descendants.
tree_rss_kib() {
    # shellcheck disable=SC2046 # one PID per word
    pids_rss_kib "$1" $(descendants "$1")
}

# tree_cpu_ticks PID: user + system CPU of PID and its descendants, in clock
# ticks, including the children they have already reaped (cutime, cstime).
# Fields are counted after the last ")" because the command name may hold
# spaces.
tree_cpu_ticks() {
    local pid total=0 ticks
    for pid in "$1" $(descendants "$1"); do
        ticks=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13 + $14 + $15}' || true)
        total=$((total + ${ticks:-0}))
    done
    echo "$total"
}
CLK_TCK=$(getconf CLK_TCK)

# rss_sampler PID OUT: until killed, writes the peak tree VmRSS (KiB) seen
# so far to OUT every 200 ms. The descendants are looked up again only
# every 5 s, so that sampling costs little CPU.
rss_sampler() {
    local pid=$1 out=$2 peak=0 rss n=0 kids=()
    while kill -0 "$pid" 2>/dev/null; do
        if [ $((n % 25)) = 0 ]; then mapfile -t kids < <(descendants "$pid"); fi
        n=$((n + 1))
        rss=$(pids_rss_kib "$pid" "${kids[@]}")
        [ "$rss" -gt "$peak" ] && peak=$rss && echo "$peak" >"$out.tmp" && mv "$out.tmp" "$out"
        sleep 0.2
    done
}

# ---- install AstrBot in the background, build ours meanwhile ---------------------
log "installing AstrBot 4.18.0 (background; log in $WORK/install.log)"
# From $WORK: importing astrbot (the install's last check) writes a default
# data/ folder into the current one, and this repository's folder doubles as
# astrbot-rs's default data root.
(cd "$WORK" && exec "$PEER/install.sh" "$VENV") >"$WORK/install.log" 2>&1 &
INSTALL_PID=$!
PIDS+=("$INSTALL_PID")

build_binaries
# Each open stream costs sockets (client, server, provider); this container's
# hard limit cannot be raised, so take all of it.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true
log "open-file limit: $(ulimit -n)"

log "waiting for the AstrBot install"
if ! wait "$INSTALL_PID"; then
    echo "AstrBot install failed: $PEER/install.sh" >&2
    cat "$WORK/install.log" >&2
    exit 1
fi
cat "$WORK/install.log" >&2
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the providers and the configs ----------------------------------------------------
# Fixed answers: AstrBot adds a "<system_reminder>Current datetime ...</system_reminder>"
# part to the user message, so the fake's default echo would differ between the
# two servers. loadgen checks every stream's text against these.
ANSWER="Fixed benchmark answer: the quick brown fox jumps over the lazy dog, then over the sleepy cat, then home again."
# About 200 words, so that 200 tokens are a few characters each, as a real
# model's are.
REALISTIC_ANSWER="Here is a short overview of how a small chat gateway handles a request. \
First, the gateway checks the API key that came with the request and finds the user it belongs to. \
Then it looks up the conversation, or creates a new one when the client did not name a session, \
and stores the user's message so that the history stays complete even if the answer fails later. \
Next, it builds the request for the language model: the system prompt, the earlier turns that \
still fit into the context window, and the new message. It opens a streaming connection to the \
provider and waits for the first token, which usually takes a few hundred milliseconds. As the \
tokens arrive, the gateway forwards each one to the client as a server-sent event, without waiting \
for the whole answer, so the user sees the reply appear word by word. When the provider signals \
the end of the answer, the gateway stores the complete reply, updates the session, and sends a \
final event that tells the client the stream is over. Errors along the way are reported to the \
client in the same stream, and the connection is closed cleanly, so that nothing is left hanging \
on either side of the exchange."
start_fake fast --tokens 50 --text "$ANSWER"
FAST_URL=$FAKE_URL
FAST_PID=$FAKE_PID
start_fake realistic --first-token-ms 300 --token-ms 20 --tokens 200 --text "$REALISTIC_ANSWER"
REALISTIC_URL=$FAKE_URL
log "fake providers at $FAST_URL (instant) and $REALISTIC_URL (realistic)"

# write_config ROOT: the same config for both servers; "fake" is the default.
write_config() {
    mkdir -p "$1/data"
    cat >"$1/data/cmd_config.json" <<JSON
{
  "provider_sources": [
    {"id": "src", "provider": "openai", "type": "openai_chat_completion",
     "provider_type": "chat_completion", "enable": true, "key": ["sk-local"],
     "api_base": "$FAST_URL", "timeout": 60, "proxy": "",
     "custom_headers": {}},
    {"id": "src-realistic", "provider": "openai", "type": "openai_chat_completion",
     "provider_type": "chat_completion", "enable": true, "key": ["sk-local"],
     "api_base": "$REALISTIC_URL", "timeout": $REALISTIC_TIMEOUT, "proxy": "",
     "custom_headers": {}}
  ],
  "provider": [
    {"id": "fake", "provider_source_id": "src", "model": "fake-model",
     "modalities": ["text", "image", "tool_use"], "custom_extra_body": {},
     "max_context_tokens": 0, "enable": true},
    {"id": "realistic", "provider_source_id": "src-realistic", "model": "fake-model",
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
            (cd "$WORK" && exec "$PEER/start.sh" "$ROOT_PY" "$PORT_PY" "$VENV") >>"$WORK/astrbot.log" 2>&1 &
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

# seed_sessions DB: stores $SESSIONS webchat sessions of $SESSIONS_USER in
# that (stopped) server's database, in AstrBot's platform_sessions table,
# which both servers share, with AstrBot's timestamp format.
seed_sessions() {
    if [ ! -f "$1" ]; then
        echo "no database at $1 to store the sessions in" >&2
        exit 1
    fi
    "$VENV/bin/python" - "$1" "$SESSIONS" "$SESSIONS_USER" <<'PY'
import datetime, sqlite3, sys, uuid

db, count, user = sys.argv[1], int(sys.argv[2]), sys.argv[3]
start = datetime.datetime(2026, 1, 1)
rows = []
for i in range(count):
    at = (start + datetime.timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S.%f")
    rows.append((str(uuid.UUID(int=i + 1)), "webchat", user, f"Bench session {i}", 0, at, at))
with sqlite3.connect(db) as con:
    con.executemany(
        "INSERT INTO platform_sessions (session_id, platform_id, creator, display_name,"
        " is_group, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
PY
}
seed_sessions "$ROOT_PY/data/data_v4.db"
seed_sessions "$ROOT_RS/data/astrbot-rs.db"

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
# It also relays chats to the instant fake with nothing else done: the
# least latency a gateway can add on this machine.
"$LOADGEN" ceiling --port "$PORT_CEIL" --provider "$FAST_URL" >"$WORK/ceiling.out" 2>"$WORK/ceiling.err" &
PIDS+=("$!")
BASE_CEIL="http://127.0.0.1:$PORT_CEIL"
"$LOADGEN" wait --url "$BASE_CEIL/api/v1/im/bots" --timeout-secs 10 >/dev/null

sleep 5
IDLE_PY=$(tree_rss_kib "$PID_PY")
IDLE_RS=$(tree_rss_kib "$PID_RS")
log "idle RSS: AstrBot $IDLE_PY KiB, astrbot-rs $IDLE_RS KiB"

# Both must list the stored sessions before the listing is timed.
for t in py rs; do
    base_var="BASE_${t^^}" key_var="KEY_${t^^}"
    total=$(curl -s -m 30 -H "Authorization: Bearer ${!key_var}" "${!base_var}$SESSIONS_PATH" |
        jq -r '.data.total // empty' 2>/dev/null || true)
    if [ "$total" != "$SESSIONS" ]; then
        echo "GET $SESSIONS_PATH on ${!base_var} says total '${total}', expected $SESSIONS" >&2
        exit 1
    fi
done
log "both servers list $SESSIONS sessions for $SESSIONS_USER"

# ---- workloads, A B A B ---------------------------------------------------------------
# A prefix for loadgen (taskset during the pinned run).
LOADGEN_PIN=()
# pin PID CPUS: moves every thread of PID to CPUS (a list such as 0 or 0-3).
pin() { taskset -a -p -c "$2" "$1" >/dev/null; }
# cpus_of PID: the CPU list PID may run on now, to put it back afterwards.
cpus_of() { taskset -c -p "$1" | awk '{ print $NF }'; }

# result NAME LOADGEN-ARGS...: keeps loadgen's JSON line in $WORK/NAME.json.
result() {
    local name=$1
    shift
    log "loadgen $1 ($name)"
    if ! "${LOADGEN_PIN[@]}" "$LOADGEN" "$@" >"$WORK/$name.json"; then
        echo "loadgen $name reported errors (counted in the table)" >&2
    fi
}

# cpu_during NAME SERVER-PID LOADGEN-ARGS...: result NAME, plus the CPU
# seconds the server (process tree) and the instant fake used meanwhile and
# the wall time, in $WORK/NAME.cpu ("server fake wall").
cpu_during() {
    local name=$1 server=$2 s0 f0 t0 s1 f1 t1
    shift 2
    s0=$(tree_cpu_ticks "$server")
    f0=$(tree_cpu_ticks "$FAST_PID")
    t0=$EPOCHREALTIME
    result "$name" "$@"
    t1=$EPOCHREALTIME
    s1=$(tree_cpu_ticks "$server")
    f1=$(tree_cpu_ticks "$FAST_PID")
    awk -v s="$((s1 - s0))" -v f="$((f1 - f0))" -v hz="$CLK_TCK" -v t0="$t0" -v t1="$t1" \
        'BEGIN { printf "%.3f %.3f %.3f\n", s / hz, f / hz, t1 - t0 }' >"$WORK/$name.cpu"
}

# rss_during NAME SERVER-PID LOADGEN-ARGS...: result NAME, with the server's
# peak tree RSS (sampled every 200 ms) in $WORK/NAME.rss.
rss_during() {
    local name=$1 server=$2 sampler
    shift 2
    rss_sampler "$server" "$WORK/$name.rss" &
    sampler=$!
    PIDS+=("$sampler")
    result "$name" "$@"
    stop "$sampler"
}

for round in 1 2; do
    for t in py rs; do
        base_var="BASE_${t^^}" key_var="KEY_${t^^}"
        result "json-$t-$round" json --url "${!base_var}/api/v1/im/bots" --key "${!key_var}" \
            --concurrency 64 --duration-secs "$JSON_SECS" --timeout-secs 30
    done
    result "json-ceil-$round" json --url "$BASE_CEIL/api/v1/im/bots" \
        --concurrency 64 --duration-secs "$JSON_SECS" --timeout-secs 30
    for t in py rs; do
        base_var="BASE_${t^^}" key_var="KEY_${t^^}"
        result "sessions-$t-$round" json --url "${!base_var}$SESSIONS_PATH" --key "${!key_var}" \
            --concurrency 64 --duration-secs "$JSON_SECS" --timeout-secs 30
    done
    for c in 1 16 128; do
        m_var="CHAT_M$c"
        # The provider alone, the baseline for the added latency.
        result "upstream$c-$round" upstream --url "$FAST_URL" --concurrency "$c" \
            --messages "${!m_var}" --expect-text "$ANSWER" --timeout-secs 60
        result "relay$c-$round" chat --url "$BASE_CEIL" --concurrency "$c" \
            --messages "${!m_var}" --expect-text "$ANSWER" --timeout-secs 60
        for t in py rs; do
            base_var="BASE_${t^^}" key_var="KEY_${t^^}" pid_var="PID_${t^^}"
            args=(chat --url "${!base_var}" --key "${!key_var}" --concurrency "$c"
                --messages "${!m_var}" --expect-text "$ANSWER" --timeout-secs 120)
            if [ "$c" = 128 ]; then
                cpu_during "chat$c-$t-$round" "${!pid_var}" "${args[@]}"
            else
                result "chat$c-$t-$round" "${args[@]}"
            fi
        done
    done
    # The same 128 clients with astrbot-rs on one core and the provider and
    # loadgen on the other: the side whose core is saturated bounds
    # streams/s, which sharing both cores hides.
    if [ "$PINNED_M" != 0 ]; then
        rs_cpus=$(cpus_of "$PID_RS")
        fast_cpus=$(cpus_of "$FAST_PID")
        pin "$PID_RS" 0
        pin "$FAST_PID" 1
        LOADGEN_PIN=(taskset -c 1)
        cpu_during "chat128-pinned-rs-$round" "$PID_RS" chat --url "$BASE_RS" --key "$KEY_RS" \
            --concurrency 128 --messages "$PINNED_M" --session-messages 4 --expect-text "$ANSWER" \
            --timeout-secs 120
        LOADGEN_PIN=()
        pin "$PID_RS" "$rs_cpus"
        pin "$FAST_PID" "$fast_cpus"
    fi
    # The same clients paced well below what the machine can do, so that
    # the added latency is the server's work rather than queueing for the
    # CPU. AstrBot is not paced: it completes about one stream a second.
    for rate in $PACED_RATES; do
        paced=(--concurrency 128 --messages "$PACED_M" --session-messages 4 --rate "$rate"
            --expect-text "$ANSWER")
        result "upstream-paced$rate-$round" upstream --url "$FAST_URL" "${paced[@]}" --timeout-secs 60
        cpu_during "chat-paced$rate-rs-$round" "$PID_RS" chat --url "$BASE_RS" --key "$KEY_RS" \
            "${paced[@]}" --timeout-secs 120
    done
    for c in $UPLOAD_CLIENTS; do
        for t in py rs; do
            base_var="BASE_${t^^}" key_var="KEY_${t^^}"
            result "upload$c-$t-$round" upload --url "${!base_var}" --key "${!key_var}" \
                --concurrency "$c" --uploads "$UPLOADS" --size-mb "$UPLOAD_MB" --timeout-secs 120
        done
    done
done

for c in $REALISTIC_CLIENTS; do
    for t in py rs; do
        base_var="BASE_${t^^}" key_var="KEY_${t^^}" pid_var="PID_${t^^}"
        rss_during "realistic$c-$t" "${!pid_var}" chat --url "${!base_var}" --key "${!key_var}" \
            --provider realistic --concurrency "$c" --messages 1 \
            --expect-text "$REALISTIC_ANSWER" --timeout-secs "$REALISTIC_TIMEOUT"
    done
done

sleep 2
AFTER_PY=$(tree_rss_kib "$PID_PY")
AFTER_RS=$(tree_rss_kib "$PID_RS")
stop "$PID_PY"
stop "$PID_RS"

# ---- many open streams, astrbot-rs only -----------------------------------------------------
# Each hold gets a fresh provider, root and server; the provider waits
# HOLD_WAIT_MS before its first token (then 20 tokens 50 ms apart), so that
# every stream is open at the same time. The provider is fresh too because
# an old one keeps the sockets of a stopped server until it next writes.
hold_run() { # NAME STREAMS LOADGEN-HOLD-ARGS...
    local name=$1 streams=$2 root key port pid fake
    shift 2
    [ "$streams" -gt 0 ] || return 0
    start_fake "$name-provider" --first-token-ms "$HOLD_WAIT_MS" --token-ms 50 --tokens 20
    fake=$FAKE_PID
    root="$WORK/$name"
    key=$(make_root "$root" "$FAKE_URL")
    port=$("$LOADGEN" free-port)
    start_server "$root" "$port" "$name"
    pid=$SERVER_PID
    "$LOADGEN" wait --url "http://127.0.0.1:$port/api/v1/im/bots" --key "$key" \
        --timeout-secs 30 >/dev/null
    sleep 1
    result "$name" hold --url "http://127.0.0.1:$port" --key "$key" --streams "$streams" \
        --rss-pid "$pid" --timeout-secs $((HOLD_WAIT_MS / 1000 + 300)) "$@"
    stop "$pid"
    stop "$fake"
}
raise_netdev_backlog 20000
log "$NETDEV_BACKLOG_NOTE"
hold_run hold-h2 "$HOLD_H2" --http2 --connections "$HOLD_H2_CONNECTIONS"
hold_run hold-h1 "$HOLD_H1"
restore_netdev_backlog
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
fmt() { awk -v a="$1" 'BEGIN { if (a == "n/a" || a == "") print "n/a"; else printf "%.1f", a }'; }
# sub A B: A - B in ms (3 decimals), n/a if either is missing.
sub() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || a == "" || b == "") print "n/a"; else printf "%.3f", a - b }'; }
# holds A OP B: 1 if the comparison holds, 0 if not, n/a if A is missing.
holds() {
    awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN {
        if (a == "n/a" || a == "" || a == "null") { print "n/a"; exit }
        if (op == "<") r = (a + 0 < b + 0); else if (op == ">") r = (a + 0 > b + 0);
        else if (op == ">=") r = (a + 0 >= b + 0); else r = (a + 0 == b + 0);
        print r }'
}
# verdict FLAG...: met when every flag is 1, missed when one is 0.
verdict() {
    local flag result="**met**"
    for flag in "$@"; do
        case "$flag" in
            0) result="**missed**" ;;
            1) ;;
            *) echo "not measured"; return 0 ;;
        esac
    done
    echo "$result"
}
# share NAME ROUND: rs requests/s as a percentage of the ceiling's.
share() { awk -v a="$(j "json-rs-$1" .per_sec)" -v b="$(j "json-ceil-$1" .per_sec)" 'BEGIN {
    if (a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a"; else printf "%.1f", a / b * 100 }'; }
# vs_astrbot ROUND: rs requests/s over AstrBot's.
vs_astrbot() { awk -v a="$(j "json-rs-$1" .per_sec)" -v b="$(j "json-py-$1" .per_sec)" 'BEGIN {
    if (a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a"; else printf "%.0f", a / b }'; }
# added CLIENTS ROUND, relay_added CLIENTS ROUND, paced_added RATE ROUND: first-text p50
# (astrbot-rs's or the minimal relay's) minus the provider alone's in the same conditions.
added() { sub "$(j "chat$1-rs-$2" .first_text_p50_ms)" "$(j "upstream$1-$2" .first_text_p50_ms)"; }
relay_added() { sub "$(j "relay$1-$2" .first_text_p50_ms)" "$(j "upstream$1-$2" .first_text_p50_ms)"; }
paced_added() { sub "$(j "chat-paced$1-rs-$2" .first_text_p50_ms)" "$(j "upstream-paced$1-$2" .first_text_p50_ms)"; }
# cpu_cell NAME: "server / provider / loadgen" CPU in % of one core.
cpu_cell() {
    local f="$WORK/$1.cpu"
    [ -f "$f" ] || { echo "n/a"; return 0; }
    awk -v l="$(j "$1" .cpu_s)" '{ w = $3 > 0 ? $3 : 1
        printf "%.0f %% / %.0f %% / %s", $1 / w * 100, $2 / w * 100, (l == "n/a" ? "n/a" : sprintf("%.0f %%", l / w * 100)) }' "$f"
}
# not_server_bound NAME: 1 when the server used no more CPU during that run
# than the fake provider or loadgen did, 0 when it used the most, n/a when
# not measured.
not_server_bound() {
    local f="$WORK/$1.cpu"
    [ -f "$f" ] || { echo "n/a"; return 0; }
    awk -v l="$(j "$1" .cpu_s)" '{ if (l == "n/a") { print "n/a"; exit }
        most = ($2 > l + 0 ? $2 : l + 0); print ($1 <= most ? 1 : 0) }' "$f"
}
# pinned_cell NAME: "server's core / provider + loadgen core" busy, in %.
pinned_cell() {
    local f="$WORK/$1.cpu"
    [ -f "$f" ] || { echo "n/a"; return 0; }
    awk -v l="$(j "$1" .cpu_s)" '{ w = $3 > 0 ? $3 : 1
        if (l == "n/a") { print "n/a"; exit }
        printf "%.0f %% / %.0f %%", $1 / w * 100, ($2 + l) / w * 100 }' "$f"
}
# tools_bound NAME: 1 when, pinned apart, the provider and loadgen's core was
# at least as busy as the server's, 0 when the server's was busier.
tools_bound() {
    local f="$WORK/$1.cpu"
    [ -f "$f" ] || { echo "n/a"; return 0; }
    awk -v l="$(j "$1" .cpu_s)" '{ if (l == "n/a") { print "n/a"; exit }
        print ($2 + l >= $1 ? 1 : 0) }' "$f"
}
peak() { cat "$WORK/$1.rss" 2>/dev/null || echo "n/a"; }
failed_of() { echo "$(j "$1" .errors) / $(j "$1" "(.ok + .errors)")"; }

row_json() { # NAME-PREFIX LABEL ROUND [CEILING-NAME]
    local p=$1 label=$2 r=$3 ceil=${4:-} py rs c_rps="" c_lat="" c_err=""
    py=$(j "$p-py-$r" .per_sec)
    rs=$(j "$p-rs-$r" .per_sec)
    if [ -n "$ceil" ]; then
        c_rps=$(fmt "$(j "$ceil" .per_sec)")
        c_lat="$(j "$ceil" .total_p50_ms) / $(j "$ceil" .total_p99_ms)"
        c_err=$(failed_of "$ceil")
    fi
    echo "| $label, 64 clients, requests/s (round $r) | $(fmt "$py") | $(fmt "$rs") | $(ratio "$rs" "$py" faster) | $c_rps |"
    echo "| — p50 / p99 latency, ms | $(j "$p-py-$r" .total_p50_ms) / $(j "$p-py-$r" .total_p99_ms) | $(j "$p-rs-$r" .total_p50_ms) / $(j "$p-rs-$r" .total_p99_ms) | | $c_lat |"
    echo "| — errors / requests | $(failed_of "$p-py-$r") | $(failed_of "$p-rs-$r") | | $c_err |"
}
row_chat() { # clients round
    local c=$1 r=$2 py rs up="upstream$1-$2"
    py=$(j "chat$c-py-$r" .per_sec)
    rs=$(j "chat$c-rs-$r" .per_sec)
    echo "| Chat, instant provider, $c client(s), correct streams/s (round $r) | $(fmt "$py") | $(fmt "$rs") | $(ratio "$rs" "$py" faster) | $(fmt "$(j "$up" .per_sec)") |"
    echo "| — first text p50 / stream total p50, ms | $(j "chat$c-py-$r" .first_text_p50_ms) / $(j "chat$c-py-$r" .total_p50_ms) | $(j "chat$c-rs-$r" .first_text_p50_ms) / $(j "chat$c-rs-$r" .total_p50_ms) | | $(j "$up" .first_text_p50_ms) / $(j "$up" .total_p50_ms) |"
    echo "| — first text p50 added to the provider alone's, ms | $(sub "$(j "chat$c-py-$r" .first_text_p50_ms)" "$(j "$up" .first_text_p50_ms)") | $(added "$c" "$r") | | |"
    echo "| — failed / all streams | $(failed_of "chat$c-py-$r") | $(failed_of "chat$c-rs-$r") | | $(failed_of "$up") |"
    echo "| — minimal relay (no key, session or storage): correct streams/s; first text p50 added / stream total p50, ms; failed | | | | $(fmt "$(j "relay$c-$r" .per_sec)"); $(relay_added "$c" "$r") / $(j "relay$c-$r" .total_p50_ms); $(failed_of "relay$c-$r") |"
    if [ "$c" = 128 ]; then
        echo "| — CPU during the run, server / fake provider / loadgen, % of one core (all: $(($(nproc) * 100)) %) | $(cpu_cell "chat$c-py-$r") | $(cpu_cell "chat$c-rs-$r") | | |"
    fi
}
row_pinned() { # round
    local r=$1 rs="chat128-pinned-rs-$1"
    [ -f "$WORK/$rs.json" ] || return 0
    echo "| Chat, instant provider, 128 clients, $PINNED_M messages each, astrbot-rs on CPU 0, provider and loadgen on CPU 1, correct streams/s (round $r) | not run | $(fmt "$(j "$rs" .per_sec)") | | |"
    echo "| — busy, astrbot-rs's core / provider and loadgen's core | | $(pinned_cell "$rs") | | |"
    echo "| — failed / all streams | | $(failed_of "$rs") | | |"
}
row_paced() { # rate round
    local rate=$1 r=$2 rs="chat-paced$1-rs-$2" up="upstream-paced$1-$2"
    [ -f "$WORK/$rs.json" ] || return 0
    echo "| Chat, instant provider, 128 clients paced at $rate streams/s in all, $PACED_M messages each, correct streams/s (round $r) | not run | $(fmt "$(j "$rs" .per_sec)") | | $(fmt "$(j "$up" .per_sec)") |"
    echo "| — first text p50 / p90 / p99, ms | | $(j "$rs" .first_text_p50_ms) / $(j "$rs" .first_text_p90_ms) / $(j "$rs" .first_text_p99_ms) | | $(j "$up" .first_text_p50_ms) / $(j "$up" .first_text_p90_ms) / $(j "$up" .first_text_p99_ms) |"
    echo "| — first text p50 added to the provider alone's, ms | | $(sub "$(j "$rs" .first_text_p50_ms)" "$(j "$up" .first_text_p50_ms)") | | |"
    echo "| — failed / all streams | | $(failed_of "$rs") | | $(failed_of "$up") |"
    echo "| — CPU during the run, server / fake provider / loadgen, % of one core | | $(cpu_cell "$rs") | | |"
}
row_upload() { # clients round
    local c=$1 r=$2 py rs
    py=$(j "upload$c-py-$r" .per_sec)
    rs=$(j "upload$c-rs-$r" .per_sec)
    echo "| Upload of a $UPLOAD_MB MB file, $c client(s), uploads/s (round $r) | $(fmt "$py") | $(fmt "$rs") | $(ratio "$rs" "$py" faster) | |"
    echo "| — MB/s; p50 / p99 per upload, ms | $(fmt "$(j "upload$c-py-$r" .mb_per_sec)"); $(j "upload$c-py-$r" .total_p50_ms) / $(j "upload$c-py-$r" .total_p99_ms) | $(fmt "$(j "upload$c-rs-$r" .mb_per_sec)"); $(j "upload$c-rs-$r" .total_p50_ms) / $(j "upload$c-rs-$r" .total_p99_ms) | | |"
    echo "| — errors / uploads | $(failed_of "upload$c-py-$r") | $(failed_of "upload$c-rs-$r") | | |"
}
row_realistic() { # clients
    local c=$1 py rs
    py=$(j "realistic$c-py" .per_sec)
    rs=$(j "realistic$c-rs" .per_sec)
    echo "| Chat, realistic provider, $c clients at once, one message each, correct streams/s | $(fmt "$py") | $(fmt "$rs") | $(ratio "$rs" "$py" faster) | |"
    echo "| — first text p50 / stream total p50 / total p99, ms | $(j "realistic$c-py" .first_text_p50_ms) / $(j "realistic$c-py" .total_p50_ms) / $(j "realistic$c-py" .total_p99_ms) | $(j "realistic$c-rs" .first_text_p50_ms) / $(j "realistic$c-rs" .total_p50_ms) / $(j "realistic$c-rs" .total_p99_ms) | | |"
    echo "| — failed / all streams (run took, s) | $(failed_of "realistic$c-py") ($(j "realistic$c-py" .elapsed_s)) | $(failed_of "realistic$c-rs") ($(j "realistic$c-rs" .elapsed_s)) | | |"
    echo "| — peak RSS during the run, MiB | $(mib "$(peak "realistic$c-py")") | $(mib "$(peak "realistic$c-rs")") | $(ratio "$(peak "realistic$c-py")" "$(peak "realistic$c-rs")" less) | |"
}
row_hold() { # name label
    local n=$1
    [ -f "$WORK/$n.json" ] || return 0
    echo "| $2: open at once / errors (run took, s) | not run | $(j "$n" .max_open) / $(j "$n" .errors) ($(j "$n" .elapsed_s)) | | |"
    echo "| — RSS before / while all were open (peak) / peak, MiB | | $(mib "$(j "$n" .rss_before_kib)") / $(mib "$(j "$n" .rss_all_open_kib)") / $(mib "$(j "$n" .rss_peak_kib)") | | |"
}

# Both rounds must meet a target for it to count as met.
targets() {
    local big=realistic$REALISTIC_BIG-rs cold idle
    cold=$(j coldstart-astrbot-rs .ready_ms)
    echo "| Target | Measured (round 1; round 2) | Result |"
    echo "|---|---|---|"
    echo "| \`GET /api/v1/im/bots\` with a key ≥ 50 % of the ceiling's requests/s | $(share 1) %; $(share 2) % | $(verdict "$(holds "$(share 1)" ">=" 50)" "$(holds "$(share 2)" ">=" 50)") |"
    echo "| … and > 1,000× AstrBot's | $(vs_astrbot 1)×; $(vs_astrbot 2)× | $(verdict "$(holds "$(vs_astrbot 1)" ">" 1000)" "$(holds "$(vs_astrbot 2)" ">" 1000)") |"
    echo "| … p99 < 5 ms at 64 clients | $(j json-rs-1 .total_p99_ms) ms; $(j json-rs-2 .total_p99_ms) ms | $(verdict "$(holds "$(j json-rs-1 .total_p99_ms)" "<" 5)" "$(holds "$(j json-rs-2 .total_p99_ms)" "<" 5)") |"
    echo "| Instant chat at 128 clients: 0 failed streams (failed / all) | $(failed_of chat128-rs-1); $(failed_of chat128-rs-2) | $(verdict "$(holds "$(j chat128-rs-1 .errors)" "=" 0)" "$(holds "$(j chat128-rs-1 .ok)" ">" 0)" "$(holds "$(j chat128-rs-2 .errors)" "=" 0)" "$(holds "$(j chat128-rs-2 .ok)" ">" 0)") |"
    echo "| … streams/s bounded by the load generator or the provider, not the server (CPU: server / provider / loadgen, % of one core) | $(cpu_cell chat128-rs-1); $(cpu_cell chat128-rs-2) | $(verdict "$(not_server_bound chat128-rs-1)" "$(not_server_bound chat128-rs-2)") |"
    if [ -f "$WORK/chat128-pinned-rs-1.json" ]; then
        echo "| … shown apart: astrbot-rs on one core, provider and loadgen on the other; the busier core bounds (busy: astrbot-rs's core / theirs) | $(pinned_cell chat128-pinned-rs-1); $(pinned_cell chat128-pinned-rs-2) | $(verdict "$(tools_bound chat128-pinned-rs-1)" "$(tools_bound chat128-pinned-rs-2)") |"
    fi
    for c in 1 128; do
        echo "| Added latency to the first text delta < 2 ms p50, $c client(s) (astrbot-rs minus provider alone; a minimal relay in brackets) | $(added "$c" 1) ms; $(added "$c" 2) ms ($(relay_added "$c" 1); $(relay_added "$c" 2)) | $(verdict "$(holds "$(added "$c" 1)" "<" 2)" "$(holds "$(added "$c" 2)" "<" 2)") |"
    done
    for rate in $PACED_RATES; do
        echo "| … 128 clients paced at $rate streams/s in all | $(paced_added "$rate" 1) ms; $(paced_added "$rate" 2) ms | $(verdict "$(holds "$(paced_added "$rate" 1)" "<" 2)" "$(holds "$(paced_added "$rate" 2)" "<" 2)") |"
    done
    echo "| Realistic chat at $REALISTIC_BIG clients: every stream correct | $(j "$big" .ok) of $REALISTIC_BIG correct, $(j "$big" .errors) failed | $(verdict "$(holds "$(j "$big" .ok)" "=" "$REALISTIC_BIG")" "$(holds "$(j "$big" .errors)" "=" 0)") |"
    echo "| … RSS < 200 MB (190.7 MiB), peak during the run | $(mib "$(peak "$big")") MiB | $(verdict "$(holds "$(peak "$big")" "<" 195312.5)") |"
    idle=$IDLE_RS
    echo "| Idle RSS < 15 MB (14.3 MiB) | $(mib "$idle") MiB | $(verdict "$(holds "$idle" "<" 14648.4)") |"
    echo "| Cold start to the first 200 < 100 ms | $cold ms | $(verdict "$(holds "$cold" "<" 100)") |"
    echo "| $HOLD_H2 streams held at once (HTTP/2, $HOLD_H2_CONNECTIONS connections), RSS < 1 GiB | $(j hold-h2 .max_open) open at once, $(j hold-h2 .errors) errors, peak $(mib "$(j hold-h2 .rss_peak_kib)") MiB | $(verdict "$(holds "$(j hold-h2 .max_open)" "=" "$HOLD_H2")" "$(holds "$(j hold-h2 .errors)" "=" 0)" "$(holds "$(j hold-h2 .rss_peak_kib)" "<" 1048576)") |"
}

# The report's description of the paced runs.
paced_note() {
    local rates
    # shellcheck disable=SC2086 # splitting on purpose: the list, trimmed
    rates=$(echo $PACED_RATES)
    if [ -z "$rates" ]; then
        echo "paced chat: not run."
    else
        echo "paced chat: 128 clients starting ${rates// / or } streams/s in all on a fixed schedule (latency counted from each request's send)."
    fi
}

report() {
    echo "Run: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(uname -sr)."
    echo "Load average (1/5/15 min) at start: $LOAD_START; at end: $LOAD_END."
    echo "AstrBot 4.18.0 (PyPI, $("$VENV/bin/python" --version 2>&1)) and astrbot-rs (release) alternate A B A B; the ceiling is \`loadgen ceiling\`, a bare axum route with the same JSON and no auth; \"provider alone\" is \`loadgen upstream\` straight against the instant fake; the \"minimal relay\" is the same \`loadgen ceiling\` relaying \`POST /api/v1/chat\` to the instant fake as AstrBot's \`plain\` and \`end\` events, with no key, session or storage."
    echo "Instant chat, 50 tokens, messages per client: ${CHAT_M1} at 1 client, ${CHAT_M16} at 16, ${CHAT_M128} at 128; realistic chat: 300 ms to the first token, then 200 tokens 20 ms apart; $(paced_note) A stream counts only if its text is the expected answer (ratio n/a when AstrBot completed none). Sessions: $SESSIONS stored, page 1 of 20. Uploads: $UPLOADS per client. Held streams: astrbot-rs only (AstrBot is not held), provider waiting $HOLD_WAIT_MS ms; open-file limit $(ulimit -n); ${NETDEV_BACKLOG_NOTE:-net.core.netdev_max_backlog not read}."
    echo
    echo "### Targets"
    echo
    targets
    echo
    echo "### Figures"
    echo
    echo "| Measure | AstrBot 4.18.0 | astrbot-rs | astrbot-rs advantage | Ceiling / provider alone |"
    echo "|---|---:|---:|---:|---:|"
    for r in 1 2; do row_json json "\`GET /api/v1/im/bots\`" "$r" "json-ceil-$r"; done
    for r in 1 2; do row_json sessions "\`GET /api/v1/chat/sessions\` ($SESSIONS stored, page of 20)" "$r"; done
    for c in 1 16 128; do
        for r in 1 2; do row_chat "$c" "$r"; done
    done
    for r in 1 2; do row_pinned "$r"; done
    for rate in $PACED_RATES; do
        for r in 1 2; do row_paced "$rate" "$r"; done
    done
    for c in $REALISTIC_CLIENTS; do row_realistic "$c"; done
    for c in $UPLOAD_CLIENTS; do
        for r in 1 2; do row_upload "$c" "$r"; done
    done
    echo "| Idle RSS after start, MiB | $(mib "$IDLE_PY") | $(mib "$IDLE_RS") | $(ratio "$IDLE_PY" "$IDLE_RS" less) | |"
    echo "| RSS after the runs, MiB | $(mib "$AFTER_PY") | $(mib "$AFTER_RS") | $(ratio "$AFTER_PY" "$AFTER_RS" less) | |"
    echo "| Start to first 200 from \`GET /api/v1/im/bots\`, ms | $(j coldstart-astrbot .ready_ms) | $(j coldstart-astrbot-rs .ready_ms) | $(ratio "$(j coldstart-astrbot .ready_ms)" "$(j coldstart-astrbot-rs .ready_ms)" faster) | |"
    row_hold hold-h2 "$HOLD_H2 streams held over $HOLD_H2_CONNECTIONS HTTP/2 connections"
    row_hold hold-h1 "$HOLD_H1 streams held over HTTP/1.1 (one connection each)"
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
