#!/usr/bin/env bash
# kill9.sh: kill -9 one server mid-load and restart it while the load goes on: it catches up
# through anti-entropy; kill -9 it again during that catch-up and restart it: it still catches
# up. Nothing acknowledged is lost anywhere: every durable record is on all 3 servers at the
# end, and every server still holds everything it ever acknowledged (ACKs seen before the kills
# included). The writers never notice (k = 2 of 3 stay up).
. "$(dirname "$0")/lib.sh" "$@"

WRITERS=3
RECORDS=8000
TOTAL=$((WRITERS * (RECORDS + 1)))
start_nats
make_capsule 3 2
start_servers

log "load: $WRITERS writers x $RECORDS records in the background"
tool load --writers $WRITERS --records $RECORDS --value-size 256 --ack-log "$T/acks.log" \
    --timeout-ms 120000 >"$T/load.out" 2>&1 &
LOAD_PID=$!
PIDS+=("$LOAD_PID")

wait_metric 1 psl_capsuled_records_stored_total 3000 60 || fail "server 1 did not get records"
kill9_server 1
if kill -0 "$LOAD_PID" 2>/dev/null; then
    before=$(metric 0 psl_capsuled_records_stored_total)
    sleep 1.5
    after=$(metric 0 psl_capsuled_records_stored_total)
    [ "$after" -gt "$before" ] || fail "the load stalled while one server was down ($before -> $after)"
    log "server 0 kept storing while server 1 was down: $before -> $after"
else
    sleep 1.5
fi

kill -0 "$LOAD_PID" 2>/dev/null || log "note: the load finished while server 1 was down"
start_server 1
# Catch-up has begun once anti-entropy brought records in; kill it again in the middle of it.
wait_metric 1 psl_capsuled_anti_entropy_records_total 1 30 || fail "server 1 fetched nothing through anti-entropy"
heads=$(tool heads --only 1)
ae=$(metric 1 psl_capsuled_anti_entropy_records_total)
kill9_server 1
held=$(echo "$heads" | sed -n 's/.* contiguous=\([0-9]*\).*/\1/p')
log "second kill during catch-up: server 1 held a contiguous ${held:-?} of $TOTAL, $ae fetched through anti-entropy"
[ -n "$held" ] && [ "$held" -lt "$TOTAL" ] || fail "server 1 had already caught up: the second kill was not during catch-up"
sleep 0.5
start_server 1

wait "$LOAD_PID"
rc=$?
cat "$T/load.out"
[ "$rc" -eq 0 ] || fail "the load did not complete (exit $rc): writers must not notice one server down"

tool compare --expect-writers $WRITERS --expect-total $TOTAL --wait-ms 90000 ||
    fail "server 1 did not catch up to an identical verified record set"
tool check-acked --ack-log "$T/acks.log" || fail "an acknowledged record is missing"
log "server 1 fetched $(metric 1 psl_capsuled_anti_entropy_records_total) records through anti-entropy since its last start"
log "ACK claims checked: $(grep -c '^ack ' "$T/acks.log") (servers x writers, pre-kill ACKs of server 1 included)"
for i in 0 1 2; do stop_server $i; done
pass
