# bench/lib.sh: shell helpers shared by the bench/*.sh scripts.
# Expects BIN (the folder holding astrbot-rs, fake-openai and loadgen), which
# build_binaries sets. Everything started here listens on 127.0.0.1 and is
# killed on exit.

log() { echo "== $*" >&2; }

# build_binaries [PROFILE]: builds astrbot-rs, fake-openai and loadgen
# (release unless PROFILE is debug); sets BIN, their folder, and LOADGEN.
build_binaries() {
    local profile=${1:-release} flags=()
    [ "$profile" = release ] && flags=(--release)
    log "building $profile binaries"
    cargo build "${flags[@]}" -p astrbot-rs -p fake-openai -p astrbot-loadgen >&2
    BIN="$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/$profile"
    LOADGEN="$BIN/loadgen"
}

# builds_under_test CALLER_DIR DIR...: the build folders given on a script's
# command line (relative ones are the caller's), each of which must hold an
# astrbot-rs binary, checked before this tree's binaries are built (which can
# take minutes); sets BUILDS to them, or to this tree's release build when
# none was given, and BIN and LOADGEN as build_binaries does.
builds_under_test() {
    local here=$1 dir
    shift
    BUILDS=()
    for dir in "$@"; do
        case "$dir" in /*) ;; *) dir="$here/$dir" ;; esac
        [ -x "$dir/astrbot-rs" ] || { echo "no astrbot-rs binary in $dir" >&2; exit 2; }
        BUILDS+=("$dir")
    done
    build_binaries
    [ ${#BUILDS[@]} -gt 0 ] || BUILDS=("$BIN")
}

# fail_showing WHAT FILE: stops the script with WHAT and the end of FILE (a
# log, or loadgen's errors), which the exit would otherwise delete with the
# work folder. valgrind's own lines (==PID==), which end every log of a
# server run under it, are left out.
fail_showing() {
    echo "$1; the end of $(basename "$2"):" >&2
    grep -v '^==[0-9]*==' "$2" | tail -n 20 >&2
    exit 1
}

# setup_work: a temp folder WORK and an exit trap that kills every process
# recorded in PIDS and removes WORK.
setup_work() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/astrbot-bench.XXXXXX")
    PIDS=()
    trap cleanup EXIT
    trap 'exit 130' INT TERM
}

cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
    restore_netdev_backlog
}

# Loopback's per-CPU packet queue (net.core.netdev_max_backlog, 1,000 by
# default) overflows when thousands of held streams get tokens in the same
# second; the dropped packets then make the kernel abort some connections
# (keepalive and retransmission give up) and those streams fail. That limit
# belongs to running server, provider and clients on one machine (a real
# provider is not on loopback), so a hold raises it for the run when it is
# allowed to, and `cleanup` puts the old value back.
NETDEV_BACKLOG=/proc/sys/net/core/netdev_max_backlog
NETDEV_BACKLOG_OLD=
raise_netdev_backlog() { # WANTED; sets NETDEV_BACKLOG_NOTE
    local wanted=$1 current
    current=$(cat "$NETDEV_BACKLOG" 2>/dev/null || echo unknown)
    NETDEV_BACKLOG_NOTE="net.core.netdev_max_backlog $current"
    [ "$current" != unknown ] && [ "$current" -lt "$wanted" ] || return 0
    if { echo "$wanted" >"$NETDEV_BACKLOG"; } 2>/dev/null; then
        NETDEV_BACKLOG_OLD=$current
        NETDEV_BACKLOG_NOTE="net.core.netdev_max_backlog raised from $current to $wanted for the holds"
    else
        NETDEV_BACKLOG_NOTE="net.core.netdev_max_backlog $current (could not raise it; held streams may fail on loopback packet drops)"
    fi
}
restore_netdev_backlog() {
    if [ -n "$NETDEV_BACKLOG_OLD" ]; then
        { echo "$NETDEV_BACKLOG_OLD" >"$NETDEV_BACKLOG"; } 2>/dev/null || true
        NETDEV_BACKLOG_OLD=
    fi
}

# start_fake NAME ARGS...: starts a fake provider on a free port; sets
# FAKE_URL (its /v1 base) and FAKE_PID.
start_fake() {
    local name=$1
    shift
    "$BIN/fake-openai" --port 0 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    FAKE_PID=$!
    PIDS+=("$FAKE_PID")
    for _ in $(seq 1 1000); do
        FAKE_URL=$(grep -m1 '^http://' "$WORK/$name.out" 2>/dev/null || true)
        [ -n "$FAKE_URL" ] && return 0
        sleep 0.01
    done
    echo "fake provider $name did not start" >&2
    cat "$WORK/$name.err" >&2
    exit 1
}

# make_root DIR FAKE_URL: a data root whose default provider is that fake
# (no models/ folder, so the local demo model is never loaded); prints a
# new API key with every scope.
make_root() {
    local root=$1 url=$2
    mkdir -p "$root/data"
    cat >"$root/data/cmd_config.json" <<JSON
{
  "provider_sources": [{
    "id": "fake-source", "provider": "openai", "type": "openai_chat_completion",
    "provider_type": "chat_completion", "enable": true, "key": ["sk-bench"],
    "api_base": "$url", "timeout": 120, "custom_headers": {}
  }],
  "provider": [{
    "id": "fake", "provider_source_id": "fake-source", "model": "fake-model", "enable": true
  }],
  "provider_settings": {"default_provider_id": "fake", "streaming_response": false},
  "platform": []
}
JSON
    "$BIN/astrbot-rs" --root "$root" apikey create --name bench --scopes chat,config,file,im \
        2>"$root/apikey.err" | grep -m1 '^abk_'
}

# start_server ROOT PORT NAME: starts astrbot-rs; sets SERVER_PID.
start_server() {
    env -u ASTRBOT_LOCAL_MODEL "$BIN/astrbot-rs" --root "$1" serve --host 127.0.0.1 --port "$2" \
        >"$WORK/$3.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
