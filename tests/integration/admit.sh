#!/usr/bin/env bash
# admit.sh: run-time admission of capsules. Three servers start with no capsule but with
# --admit-owner for one owner; `psl capsule serve` makes them serve a capsule of that owner, and
# records are then stored and acknowledged by all three. A capsule of another owner is refused.
# A restarted server (again without --capsule) goes on serving the admitted capsule from its
# database.
. "$(dirname "$0")/lib.sh" "$@"

start_nats
make_capsule 3 2
log "owner ${OWNER_PK:0:16}"
for i in 0 1 2; do SERVE_FILE=0 start_server $i --admit-owner "$OWNER_PK"; done

log "another owner's capsule over the same servers is refused"
"$PSL" keygen --type owner --out "$CAP/other.key" >/dev/null || fail "keygen"
"$PSL" capsule create --owner "$CAP/other.key" --replica "$CAP/s0.key" --replica "$CAP/s1.key" \
    --replica "$CAP/s2.key" --out "$CAP/other.pslx" >/dev/null || fail "create other"
if "$PSL" capsule serve "$CAP/other.pslx" --fabric "$FABRIC" --timeout-ms 2000 2>"$T/other.err"; then
    fail "servers admitted a capsule of an owner they were not told to admit"
fi
grep -q "admit-owner" "$T/other.err" || { cat "$T/other.err"; fail "unclear refusal message"; }
wait_metric 0 psl_capsuled_admissions_refused_total 1 5 || fail "the refusal was not counted"

log "the admitted owner's capsule is served by all three"
"$PSL" capsule serve "$CAP/capsule.pslx" --fabric "$FABRIC" | tee "$T/serve.out" ||
    fail "psl capsule serve"
grep -q "by 3 of 3 servers" "$T/serve.out" || fail "expected all 3 servers"
tool load --writers 1 --records 50 --all-acks --timeout-ms 30000 ||
    fail "records of the admitted capsule must be acknowledged by all 3 servers"
tool compare || fail "the three servers must hold the same records"

log "a restarted server serves the admitted capsule from its database"
stop_server 1
SERVE_FILE=0 start_server 1
tool fresh --answers 3 --expect-seq 51 --expect-writers 1 || fail "server 1 does not serve after restart"
pass
