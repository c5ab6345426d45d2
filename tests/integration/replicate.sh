#!/usr/bin/env bash
# replicate.sh: 3 writers x 10k records to 3 servers over a real nats-server. Every server ends
# with the identical, fully verified record set, and every record is acknowledged by all 3.
. "$(dirname "$0")/lib.sh" "$@"

WRITERS=3
RECORDS=10000
start_nats
make_capsule 3 2
start_servers

log "load: $WRITERS writers x $RECORDS records, waiting for ACKs from all 3 servers"
tool load --writers $WRITERS --records $RECORDS --value-size 256 --all-acks \
    --ack-log "$T/acks.log" --timeout-ms 120000 || fail "load did not complete"

TOTAL=$((WRITERS * (RECORDS + 1))) # each writer's CERT, then its DATA records
tool compare --expect-writers $WRITERS --expect-total $TOTAL --wait-ms 30000 ||
    fail "servers do not hold identical verified record sets"
tool check-acked --ack-log "$T/acks.log" || fail "an acknowledged record is missing"

for i in 0 1 2; do
    stored=$(metric $i psl_capsuled_records_stored_total)
    [ "$stored" -eq "$TOTAL" ] || fail "server $i stored $stored records, expected $TOTAL"
    rejected=$(metrics $i | grep -c '^psl_capsuled_records_rejected_total{')
    [ "$rejected" -eq 0 ] || { metrics $i | grep rejected; fail "server $i rejected honest records"; }
    log "server $i: stored=$stored commits=$(metric $i psl_capsuled_commits_total)" \
        "duplicates=$(metric $i psl_capsuled_records_duplicate_total)" \
        "commit_p50=$(metric $i 'psl_capsuled_commit_latency_seconds{quantile="0.5"}')s"
done
for i in 0 1 2; do stop_server $i; done
pass
