#!/usr/bin/env bash
# scl_cluster.sh: 4 SCL workers (engines in thread mode, each with its own NATS connection) and 3
# psl-capsuled servers over a real nats-server. Workers do seeded random puts and deletes on a
# shared key space, flush (k = 2 of 3 durable), and then all four state digests must be equal.
# Arguments: PSL_CAPSULED CAPSULE_TOOL PSL NATS_SERVER SCL_CLUSTER
# Environment: PSL_SCL_CLUSTER_SEED (default 1), PSL_SCL_CLUSTER_OPS (per worker, default 4000).
. "$(dirname "$0")/lib.sh" "$@"

CLUSTER=${5:-}
[ -n "$CLUSTER" ] && [ -x "$CLUSTER" ] || fail "scl_cluster binary not given (5th argument)"
SEED=${PSL_SCL_CLUSTER_SEED:-1}
OPS=${PSL_SCL_CLUSTER_OPS:-4000}

start_nats
make_capsule 3 2
start_servers

log "scl_cluster: 4 workers x $OPS random puts/deletes, seed $SEED"
timeout --foreground -k 5 "${TOOL_TIME_LIMIT:-150}" "$CLUSTER" "$CAP" "$FABRIC" \
    --ops "$OPS" --keys 256 --seed "$SEED" --timeout-s 30 &
TOOL_PID=$!
rc=0
wait "$TOOL_PID" || rc=$?
TOOL_PID=
[ "$rc" -eq 0 ] || fail "workers did not converge (exit $rc; replay with PSL_SCL_CLUSTER_SEED=$SEED)"

for i in 0 1 2; do
    rejected=$(metrics $i | grep -c '^psl_capsuled_records_rejected_total{')
    [ "$rejected" -eq 0 ] || { metrics $i | grep rejected; fail "server $i rejected honest records"; }
    log "server $i: stored=$(metric $i psl_capsuled_records_stored_total)" \
        "duplicates=$(metric $i psl_capsuled_records_duplicate_total)"
done
for i in 0 1 2; do stop_server $i; done
pass
