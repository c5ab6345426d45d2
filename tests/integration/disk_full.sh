#!/usr/bin/env bash
# disk_full.sh: a server runs out of space. (1) Its LMDB map is 1 MiB: it reports storage_full
# (metric and log), refuses further records, keeps everything it acknowledged and keeps serving
# reads; the writers are not held up (k = 2 of 3 still store). Restarted with a larger map it
# catches up through anti-entropy. (2) When root may mount one: its data directory is a 1 MiB
# tmpfs (ENOSPC from the file system); growing the tmpfs lets it recover without a restart.
. "$(dirname "$0")/lib.sh" "$@"

start_nats
make_capsule 3 2
start_server 0
start_server 1
start_server 2 --map-size-mb 1

RECORDS=3000
TOTAL=$((RECORDS + 1))
tool load --writers 1 --records $RECORDS --value-size 256 --ack-log "$T/acks.log" --timeout-ms 60000 ||
    fail "the writer was held up by one full server"
[ "$(metric 2 psl_capsuled_storage_full)" -eq 1 ] || fail "server 2 does not report storage_full"
grep -q 'storage full' "$T/s2.log" || fail "server 2 did not log that its storage is full"
server_alive 2 || fail "server 2 died when its storage filled"
refused=$(metric 2 'psl_capsuled_records_rejected_total{reason="storage_full"}')
[ "$refused" -gt 0 ] || fail "server 2 did not count refused records under storage_full"
held=$(tool heads --only 2 | sed -n 's/.* contiguous=\([0-9]*\).*/\1/p')
log "server 2 full: holds $held of $TOTAL records, refused $refused (reason storage_full)"
[ -n "$held" ] && [ "$held" -lt "$TOTAL" ] || fail "server 2 was expected to fill up before the end"
# Everything acknowledged is still there: each durable record on at least k = 2 servers, and
# server 2 still holds (and serves) everything it acknowledged before it filled up.
tool check-acked --ack-log "$T/acks.log" --min-servers 2 || fail "an acknowledged record is missing"

log "restart server 2 with a 64 MiB map: it recovers and catches up"
stop_server 2
start_server 2 --map-size-mb 64
tool compare --expect-writers 1 --expect-total $TOTAL --wait-ms 60000 || fail "server 2 did not catch up"
tool check-acked --ack-log "$T/acks.log" || fail "an acknowledged record is missing after recovery"
[ "$(metric 2 psl_capsuled_storage_full)" -eq 0 ] || fail "server 2 still reports storage_full"

# ---- (2) a full file system: ENOSPC ----
FS=$T/tmpfs
mkdir -p "$FS"
if ! mount -t tmpfs -o size=1m tmpfs "$FS" 2>/dev/null; then
    log "SKIP tmpfs variant: mounting a tmpfs is not permitted here"
    for i in 0 1 2; do stop_server $i; done
    pass
    exit 0
fi
MOUNTS+=("$FS")
log "server 2 moves to an empty 1 MiB tmpfs; it catches up from its peers until the disk is full"
stop_server 2
DATA_DIR[2]=$FS/data2
start_server 2
wait_metric 2 psl_capsuled_storage_full 1 60 || fail "server 2 on a full tmpfs does not report storage_full"
# A new ack log: the tmpfs server is a new disk, so what server 2 acknowledged from its old
# data directory is not its promise any more (it gets it back through anti-entropy).
tool load --writers 1 --records 500 --value-size 256 --ack-log "$T/acks2.log" --timeout-ms 60000 ||
    fail "the writer was held up by a server with a full disk"
server_alive 2 || fail "server 2 died on ENOSPC"
grep -q 'storage full' "$T/s2.log" || fail "server 2 did not log ENOSPC as storage full"
held=$(tool heads --only 2 | sed -n 's/.* contiguous=\([0-9]*\).*/\1/p')
log "server 2 on the full tmpfs holds ${held:-?} records ($(df -k "$FS" | awk 'NR==2 {print $4}') KiB free)"
tool check-acked --ack-log "$T/acks2.log" --min-servers 2 || fail "an acknowledged record is missing"

log "grow the tmpfs to 64 MiB: server 2 recovers in place (no restart) and catches up"
mount -o remount,size=64m "$FS" || fail "cannot grow the tmpfs"
tool compare --expect-writers 2 --expect-total $((TOTAL + 501)) --wait-ms 60000 ||
    fail "server 2 did not recover after space returned"
cat "$T/acks.log" "$T/acks2.log" >"$T/acks-all.log"
tool check-acked --ack-log "$T/acks-all.log" || fail "an acknowledged record is missing after recovery"
[ "$(metric 2 psl_capsuled_storage_full)" -eq 0 ] || fail "server 2 still reports storage_full"
grep -q 'space again' "$T/s2.log" || fail "server 2 did not log that space returned"
for i in 0 1 2; do stop_server $i; done
pass
