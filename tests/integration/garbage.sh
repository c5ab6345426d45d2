#!/usr/bin/env bash
# garbage.sh: random and mutated messages on every topic a live server listens to (records,
# requests to all and to each server, heads gossip, and the servers' own reply topics, learnt by
# watching their requests) never crash a server: afterwards each still answers, stores and
# acknowledges, and all hold identical verified record sets. The decoders themselves are fuzzed
# in tests/fuzz; this checks the running servers end to end. PSL_IT_SEED picks the run
# (default: random, printed so a failure replays).
. "$(dirname "$0")/lib.sh" "$@"

SEED=${PSL_IT_SEED:-$((RANDOM * 32768 + RANDOM))}
COUNT=${PSL_IT_GARBAGE_COUNT:-20000}
start_nats
make_capsule 3 2
start_servers
log "garbage seed $SEED (replay with PSL_IT_SEED=$SEED)"
tool garbage --count "$COUNT" --seed "$SEED" || fail "the garbage run itself failed"
for i in 0 1 2; do
    server_alive $i || fail "server $i died under garbage (seed $SEED)"
    metrics $i >"$T/m$i.txt" || fail "server $i stopped answering /metrics (seed $SEED)"
    log "server $i alive: received=$(metric $i psl_capsuled_records_received_total)" \
        "requests=$(metric $i psl_capsuled_requests_total) refused=$(metric $i psl_capsuled_requests_refused_total)" \
        "pending=$(metric $i psl_capsuled_pending_records)" \
        "rejected: $(grep '^psl_capsuled_records_rejected_total{' "$T/m$i.txt" | sed 's/.*reason="\([a-z_]*\)"} \([0-9]*\)/\1=\2/' | tr '\n' ' ')"
done
[ "$(metric 0 psl_capsuled_requests_refused_total)" -gt 0 ] || fail "no malformed request reached server 0"
# Still serving: a writer's records become durable on all 3; all hold the same verified set
# (the garbage run's own seed writer plus this one).
tool load --writers 1 --records 200 --all-acks --timeout-ms 30000 || fail "servers stopped serving writes (seed $SEED)"
tool compare --expect-writers 2 --wait-ms 20000 || fail "servers diverged under garbage (seed $SEED)"
for i in 0 1 2; do stop_server $i; done
pass
