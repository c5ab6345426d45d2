#!/usr/bin/env bash
# reject.sh: records an attacker publishes on the record topic: forged (another key's signature
# on a certified writer's next record, or on a certificate naming the owner), bit-flipped, replayed, for another capsule, from a
# self-certified writer, oversized, and from a writer with no certificate at all. Each is
# counted under its reason on every server and never stored; the servers keep serving.
. "$(dirname "$0")/lib.sh" "$@"

start_nats
make_capsule 3 2
start_servers
tool prime --records 5 || fail "prime: the victim writer's records were not acknowledged"
VICTIM_TOTAL=6 # its CERT and 5 DATA records

declare -A base_stored
for i in 0 1 2; do base_stored[$i]=$(metric $i psl_capsuled_records_stored_total); done

# expect_counted KIND METRIC: inject one record of KIND; METRIC must grow by one on every server.
expect_counted() {
    local kind=$1 name=$2 i before=()
    for i in 0 1 2; do before[$i]=$(metric $i "$name"); done
    tool inject --kind "$kind" || fail "inject $kind"
    for i in 0 1 2; do
        wait_metric $i "$name" $((before[i] + 1)) 10 ||
            fail "server $i did not count the $kind record under $name (still ${before[$i]})"
        server_alive $i || fail "server $i died after a $kind record"
    done
    log "$kind: counted as $name on all 3 servers"
}

expect_counted forged 'psl_capsuled_records_rejected_total{reason="bad_signature"}'
expect_counted forged-cert 'psl_capsuled_records_rejected_total{reason="bad_signature"}'
expect_counted bitflip 'psl_capsuled_records_rejected_total{reason="bad_signature"}'
expect_counted wrong-capsule 'psl_capsuled_records_rejected_total{reason="wrong_capsule"}'
expect_counted uncertified 'psl_capsuled_records_rejected_total{reason="cert_issuer"}'
expect_counted oversized 'psl_capsuled_records_rejected_total{reason="too_large"}'
# A replay is a byte-identical copy of a stored record: indistinguishable from a writer's own
# re-send, so it is acknowledged again and counted as a duplicate, never stored twice.
expect_counted replay psl_capsuled_records_duplicate_total
# A record of a writer whose CERT never came is held (bounded) while the CERT is fetched.
expect_counted no-cert psl_capsuled_pending_records

for i in 0 1 2; do
    stored=$(metric $i psl_capsuled_records_stored_total)
    [ "$stored" -eq "${base_stored[$i]}" ] ||
        fail "server $i stored $((stored - base_stored[$i])) of the injected records"
    metrics $i | grep '^psl_capsuled_records_rejected_total{' | sed "s/^/  server $i: /"
done
tool compare --expect-writers 1 --expect-total $VICTIM_TOTAL --wait-ms 5000 ||
    fail "the servers' record sets changed"
tool fresh --expect-seq $VICTIM_TOTAL --expect-writers 1 || fail "freshness read after the attack"
# Still serving writes: an honest writer's records become durable on all 3.
tool load --writers 1 --records 50 --all-acks --timeout-ms 30000 || fail "servers stopped serving writes"
for i in 0 1 2; do stop_server $i; done
pass
