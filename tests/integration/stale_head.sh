#!/usr/bin/env bash
# stale_head.sh: a server that serves a stale head (psl-capsuled --stale-heads, the test double
# of a lagging or rolled-back server) is out-voted by the freshness read: with n = 3, k = 2 any
# n - k + 1 = 2 answers include one that acknowledged the confirmed write. With the stale
# server alone the reader gets the old head and says the bound was not met.
. "$(dirname "$0")/lib.sh" "$@"

STALE=5
RECORDS=40
HEAD=$((RECORDS + 1)) # the CERT is seq 1
start_nats
make_capsule 3 2
start_server 0
start_server 1
start_server 2 --stale-heads $STALE

tool load --writers 1 --records $RECORDS --all-acks --timeout-ms 30000 ||
    fail "load: every record must be acknowledged by all 3 servers"

log "all 3 answer: the stale claim ($((HEAD - STALE))) loses to the verified head $HEAD"
tool fresh --expect-seq $HEAD --expect-writers 1 --expect-lag-bound 1 | tee "$T/fresh3.out" ||
    fail "freshness read with all 3 servers"
grep -q "head $HEAD reported_by=2" "$T/fresh3.out" || fail "the honest head should be reported by exactly 2 servers"

stop_server 0
log "only the honest server 1 and the stale server 2 answer (n - k + 1 = 2)"
tool fresh --expect-seq $HEAD --expect-writers 1 --expect-lag-bound 1 | tee "$T/fresh2.out" ||
    fail "the stale server was not out-voted by the freshness read"
grep -q "answers=2 lag_bound_met=1" "$T/fresh2.out" || fail "expected 2 answers meeting the lag bound"

stop_server 1
log "the stale server alone: the default read (2 answers needed) fails; a 1-answer read reports the stale head and that the bound was not met"
if tool fresh --timeout-ms 2000 >"$T/fresh1.out"; then
    cat "$T/fresh1.out"
    fail "a freshness read succeeded with 1 of the 2 answers it needs"
fi
cat "$T/fresh1.out"
tool fresh --answers 1 --expect-seq $((HEAD - STALE)) --expect-lag-bound 0 ||
    fail "a 1-answer read must show the stale head and say the bound was not met"
stop_server 2
pass
