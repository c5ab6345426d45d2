# lib.sh: shared harness of the integration scenarios (sourced, not run). It starts a
# nats-server and psl-capsuled processes on free loopback ports inside a private temp directory,
# remembers every process it started by pid, and always stops them and removes the directory on
# exit (normal end, failure, or the time limit). Only processes started here are ever signalled.
#
# A scenario script does:   . "$(dirname "$0")/lib.sh" "$@"   then calls the functions below.
# Arguments: PSL_CAPSULED CAPSULE_TOOL PSL [NATS_SERVER]
# Environment: PSL_IT_TIME_LIMIT (seconds for the whole scenario, default 240),
#              PSL_IT_KEEP=1 keeps the temp directory (logs, databases) for a post-mortem.

if [ $# -lt 3 ]; then
    echo "usage: $0 PSL_CAPSULED CAPSULE_TOOL PSL [NATS_SERVER]" >&2
    exit 2
fi
# The whole scenario runs under `timeout`; it signals the whole process group on expiry, which
# reaches every server started here even if this shell is busy waiting.
if [ -z "${PSL_IT_WRAPPED:-}" ]; then
    export PSL_IT_WRAPPED=1
    exec timeout -k 10 "${PSL_IT_TIME_LIMIT:-240}" bash "$0" "$@"
fi

CAPSULED=$1
TOOL=$2
PSL=$3
NATS=${4:-nats-server}
[ -x "$NATS" ] || NATS=$(command -v "$NATS" || command -v nats-server || echo /usr/sbin/nats-server)
SCENARIO=$(basename "$0" .sh)
if [ ! -x "$NATS" ]; then
    echo "FAIL: nats-server not found (scripts/install-deps installs it)"
    exit 1
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/psl-it-$SCENARIO.XXXXXX")
CAP=$T/capsule # keys and the capsule export
PIDS=()        # every process started here
NATS_PID=
declare -A SPID MPORT
MOUNTS=()
TOOL_PID=
FAILED=0
T_START=$(date +%s.%N)

log() { printf '[%6.1fs] %s\n' "$(echo "$(date +%s.%N) - $T_START" | bc)" "$*"; }

dump_logs() {
    for f in "$T"/*.log; do
        [ -f "$f" ] || continue
        echo "---- last lines of $(basename "$f") ----"
        tail -n 25 "$f"
    done
}

cleanup() {
    local rc=$?
    trap - EXIT TERM INT
    [ "$rc" -ne 0 ] && [ "$FAILED" -eq 0 ] && { echo "FAIL: $SCENARIO stopped with exit code $rc"; FAILED=1; }
    [ "$FAILED" -ne 0 ] && dump_logs
    local pid
    [ -n "${TOOL_PID:-}" ] && kill -TERM "$TOOL_PID" 2>/dev/null
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    local m
    for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
    if [ -n "${PSL_IT_KEEP:-}" ]; then echo "kept $T"; else rm -rf "$T"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "FAIL: $SCENARIO: time limit or signal"; FAILED=1; exit 124' TERM INT

fail() {
    echo "FAIL: $SCENARIO: $*"
    FAILED=1
    exit 1
}

port_open() { (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }

# A port no socket uses now, below the ephemeral range (so no outgoing connection takes it
# meanwhile). The race with other programs is accepted: a start that fails is retried.
free_port() {
    local p lo
    lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    for _ in $(seq 100); do
        p=$((10000 + RANDOM % (lo - 10000)))
        if [ -z "$(ss -Htan "( sport = :$p )" 2>/dev/null)" ] && ! port_open "$p"; then
            echo "$p"
            return 0
        fi
    done
    fail "no free port"
}

start_nats() {
    local port
    for _ in 1 2 3; do
        port=$(free_port)
        cat >"$T/nats.conf" <<EOF
listen: 127.0.0.1:$port
max_payload: 8MB
max_pending: 512MB
write_deadline: "30s"
EOF
        "$NATS" -c "$T/nats.conf" >>"$T/nats.log" 2>&1 &
        NATS_PID=$!
        PIDS+=("$NATS_PID")
        for _ in $(seq 100); do
            port_open "$port" && break
            kill -0 "$NATS_PID" 2>/dev/null || break
            sleep 0.05
        done
        if port_open "$port"; then
            FABRIC=nats://127.0.0.1:$port
            log "nats-server pid $NATS_PID on $FABRIC"
            return 0
        fi
        kill -KILL "$NATS_PID" 2>/dev/null
    done
    fail "nats-server did not start"
}

# The capsule, as a user makes it with the psl CLI: owner, 3 server keys, the capsule key, and
# the signed metadata naming the 3 servers with quorum 2.
make_capsule() {
    local n=${1:-3} k=${2:-2} args=() i
    mkdir -p "$CAP"
    OWNER_PK=$("$PSL" keygen --type owner --out "$CAP/owner.key") || fail "psl keygen owner"
    OWNER_PK=${OWNER_PK##* }
    "$PSL" keygen --type capsule --out "$CAP/capsule.key" >/dev/null || fail "psl keygen capsule"
    for i in $(seq 0 $((n - 1))); do
        "$PSL" keygen --type server --out "$CAP/s$i.key" >/dev/null || fail "psl keygen server"
        args+=(--replica "$CAP/s$i.key")
    done
    CAPSULE_NAME=$("$PSL" capsule create --owner "$CAP/owner.key" "${args[@]}" --quorum "$k" \
        --label "integration $SCENARIO" --out "$CAP/capsule.pslx") || fail "psl capsule create"
    SERVERS=$n
    log "capsule ${CAPSULE_NAME:0:16} n=$n k=$k"
}

# start_server I [EXTRA FLAGS...]: starts server I (data in $T/data$I) and waits until ready.
# Its metrics port is kept across restarts; a clash with another program picks a new one.
start_server() {
    local i=$1 try
    shift
    for try in 1 2 3; do
        [ -n "${MPORT[$i]:-}" ] || MPORT[$i]=$(free_port)
        rm -f "$T/s$i.ready"
        # SERVE_FILE=0: start without --capsule (run-time admission, or what is stored).
        local capsule_arg=(--capsule "$CAP/capsule.pslx")
        [ "${SERVE_FILE:-1}" = 1 ] || capsule_arg=()
        "$CAPSULED" --data-dir "${DATA_DIR[$i]:-$T/data$i}" --key "$CAP/s$i.key" --fabric "$FABRIC" \
            "${capsule_arg[@]}" --metrics-port "${MPORT[$i]}" --ready-file "$T/s$i.ready" \
            --anti-entropy-ms "${ANTI_ENTROPY_MS:-200}" "$@" >>"$T/s$i.log" 2>&1 &
        SPID[$i]=$!
        PIDS+=("${SPID[$i]}")
        for _ in $(seq 200); do
            [ -f "$T/s$i.ready" ] && break
            kill -0 "${SPID[$i]}" 2>/dev/null || break
            sleep 0.05
        done
        if [ -f "$T/s$i.ready" ]; then
            log "server $i pid ${SPID[$i]} ready (metrics :${MPORT[$i]}) $*"
            return 0
        fi
        kill -0 "${SPID[$i]}" 2>/dev/null && fail "server $i not ready after 10 s"
        wait "${SPID[$i]}" 2>/dev/null
        tail -n 1 "$T/s$i.log" | grep -q "for metrics" || fail "server $i exited during start-up"
        MPORT[$i]=
    done
    fail "server $i: no usable metrics port"
}

start_servers() {
    local i
    for i in $(seq 0 $((SERVERS - 1))); do start_server "$i"; done
}

server_alive() { kill -0 "${SPID[$1]}" 2>/dev/null; }

# stop_server I: SIGTERM (graceful) and wait for the exit status, which must be 0.
stop_server() {
    local i=$1 rc
    kill -TERM "${SPID[$i]}"
    wait "${SPID[$i]}"
    rc=$?
    [ "$rc" -eq 0 ] || fail "server $i exited with $rc after SIGTERM"
    log "server $i stopped"
}

kill9_server() {
    kill -KILL "${SPID[$1]}"
    wait "${SPID[$1]}" 2>/dev/null
    log "server $1 killed with SIGKILL"
}

# metrics I: the Prometheus text of server I.
metrics() { curl -sf --max-time 5 "http://127.0.0.1:${MPORT[$1]}/metrics"; }

# metric I NAME: one sample's value (NAME may include labels), 0 when absent.
metric() {
    local v
    v=$(metrics "$1" | awk -v n="$2" '$1 == n { print $2; exit }')
    echo "${v:-0}"
}

# wait_metric I NAME MIN SECONDS: until the sample is >= MIN.
wait_metric() {
    local i=$1 name=$2 min=$3 secs=$4 v
    for _ in $(seq $((secs * 10))); do
        v=$(metric "$i" "$name")
        [ "${v%.*}" -ge "$min" ] 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# tool CMD [ARGS...]: capsule_tool CMD on this capsule and fabric, with a time limit. It runs in
# this process group (--foreground), so the scenario's time limit reaches it too, and in the
# background with `wait`, so that a signal's trap runs at once rather than after the tool.
tool() {
    timeout --foreground -k 5 "${TOOL_TIME_LIMIT:-150}" "$TOOL" "$1" "$CAP" --fabric "$FABRIC" "${@:2}" &
    TOOL_PID=$!
    local rc=0
    wait "$TOOL_PID" || rc=$?
    TOOL_PID=
    return "$rc"
}

pass() {
    log "PASS: $SCENARIO"
}
