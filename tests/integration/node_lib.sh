# node_lib.sh: psl-node helpers for the node_*.sh scenarios, sourced after lib.sh (which owns the
# temp directory, the pid list and the cleanup). Extra arguments after lib.sh's four:
#   $5 PSL_NODE   $6 JSON_GET   $7 EXAMPLES_DIR
# Environment: PSL_NODE_ENCLAVE=PATH runs the nodes with another psl-enclave (e.g. a gcc ASan
# build's: clang's ASan runtime makes a system call outside the enclave's seccomp allow-list).
PSL_NODE=${5:?usage: $0 PSL_CAPSULED CAPSULE_TOOL PSL NATS_SERVER PSL_NODE JSON_GET EXAMPLES_DIR}
JG=${6:?json_get}
EXAMPLES=${7:?examples dir}
declare -A NPID NURL

# start_node NAME [psl-node flags...]: a node with its own data dir and a free port; waits until
# it serves. NURL[NAME] is its base URL.
start_node() {
    local name=$1 port try
    shift
    for try in 1 2 3; do
        port=$(free_port)
        rm -f "$T/$name.ready"
        "$PSL_NODE" --listen "127.0.0.1:$port" --data-dir "$T/$name" --ready-file "$T/$name.ready" \
            --node-id "$name" --pool 2 ${PSL_NODE_ENCLAVE:+--enclave "$PSL_NODE_ENCLAVE"} "$@" >>"$T/$name.log" 2>&1 &
        NPID[$name]=$!
        PIDS+=("${NPID[$name]}")
        for _ in $(seq 200); do
            [ -f "$T/$name.ready" ] && break
            kill -0 "${NPID[$name]}" 2>/dev/null || break
            sleep 0.05
        done
        if [ -f "$T/$name.ready" ]; then
            NURL[$name]=http://127.0.0.1:$port
            log "node $name pid ${NPID[$name]} on ${NURL[$name]} $*"
            return 0
        fi
        kill -0 "${NPID[$name]}" 2>/dev/null && fail "node $name not ready after 10 s"
        wait "${NPID[$name]}" 2>/dev/null
        grep -q "cannot listen" "$T/$name.log" || fail "node $name exited during start-up"
    done
    fail "node $name: no usable port"
}

# stop_node NAME: SIGTERM, which must end it with exit code 0 within 10 s.
stop_node() {
    local rc=0
    kill -TERM "${NPID[$1]}"
    wait "${NPID[$1]}" || rc=$?
    [ "$rc" -eq 0 ] || fail "node $1 exited with $rc after SIGTERM"
    log "node $1 stopped"
}

# http METHOD URL [BODY_FILE]: prints the status code; the body goes to $T/http.body.
http() {
    local args=(-s -o "$T/http.body" -w '%{http_code}' -X "$1" --max-time 20)
    [ -n "${3:-}" ] && args+=(-H 'Content-Type: application/json' --data-binary "@$3")
    curl "${args[@]}" "$2"
}

# expect_error CODE METHOD URL [BODY_FILE] [WORDS]: the status and a JSON {"error": ...} naming
# WORDS (a grep -E pattern).
expect_error() {
    local want=$1 got err
    got=$(http "$2" "$3" "${4:-}")
    [ "$got" = "$want" ] || { cat "$T/http.body"; fail "$2 $3: status $got, expected $want"; }
    err=$("$JG" "$T/http.body" error) || fail "$2 $3: no JSON error in: $(head -c 300 "$T/http.body")"
    [ -z "${5:-}" ] || echo "$err" | grep -Eq "$5" || fail "$2 $3: error '$err' does not match '$5'"
    log "ok: $2 ${3#http://127.0.0.1:*/} -> $got: $err"
}
