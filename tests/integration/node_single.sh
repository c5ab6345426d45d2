#!/usr/bin/env bash
# node_single.sh: one psl-node on one machine (in-process fabric, 3 embedded storage servers):
# `psl job submit --wait` runs a job end to end through the HTTP API (attestation against the
# node's platform key, sealed provisioning, sealed results), `psl job status` re-verifies it from
# the job file, the export verifies with `psl capsule verify --key`, a failing lambda exits 4,
# a pinned wrong platform key is refused (exit 1), and SIGTERM stops the node cleanly.
. "$(dirname "$0")/lib.sh" "$@"
. "$(dirname "$0")/node_lib.sh" "$@"

cd "$T" || fail "cd"
"$PSL" keygen --out "$T/owner.key" >/dev/null || fail "keygen"
start_node a --fabric inproc --embedded-servers 3
A=${NURL[a]}
"$PSL" status --node "$A" >"$T/status.txt" || fail "psl status"
grep -q 'tee *sim (simulation: no hardware protection)' "$T/status.txt" || fail "status: tee"
[ "$(grep -c '^server ' "$T/status.txt")" = 3 ] || fail "status: 3 embedded servers"
PK=$(awk '$1 == "platform" { print $2 }' "$T/status.txt")

rc=0
"$PSL" job submit "$EXAMPLES/pi.lua" --node "$A" --workers 3 --servers-from-node \
    --owner "$T/owner.key" --args 5000 --trust-platform "$PK" --job-file "$T/pi.json" \
    --wait --json >"$T/pi.out" 2>"$T/pi.err" || rc=$?
[ "$rc" = 0 ] || { cat "$T/pi.err" "$T/pi.out"; fail "job submit --wait: exit $rc"; }
J="$JG $T/pi.out"
[ "$($J workers)" = 3 ] || fail "workers"
for i in 0 1 2; do
    [ "$($J results.$i.verified)" = true ] || fail "worker $i not verified"
    [ "$($J results.$i.ok)" = true ] || fail "worker $i not ok"
done
[ "$($J results.0.result.darts)" = 15000 ] || fail "pi darts: $($J results.0.result.darts)"
[ "$($J durable)" = true ] || fail "not durable"
[ "$($J chain_verified)" = true ] || fail "chain not verified"
[ "$(stat -c %a "$T/pi.json")" = 600 ] || fail "the job file must be 0600"
"$PSL" capsule verify "$($J export)" --key "$($J capsule_key_file)" >"$T/verify.txt" ||
    { cat "$T/verify.txt"; fail "psl capsule verify of the export"; }
log "ok: a 3-worker job through the HTTP API: results verified, capsule verified ($($J records) records)"

rc=0
"$PSL" job status "$T/pi.json" --json >"$T/st.out" 2>/dev/null || rc=$?
[ "$rc" = 0 ] || fail "job status: exit $rc"
[ "$("$JG" "$T/st.out" status)" = done ] || fail "job status: not done"
[ "$("$JG" "$T/st.out" results.2.verified)" = true ] || fail "job status: worker 2 not verified"
log "ok: psl job status re-verifies the results from the job file"

# A failing lambda: exit 4, the error names the line.
printf 'function main()\n  if psl.worker() == 1 then error("one gives up") end\n  return 1\nend\n' >"$T/bad.lua"
rc=0
"$PSL" job submit "$T/bad.lua" --node "$A" --workers 2 --servers-from-node --owner "$T/owner.key" \
    --job-file "$T/bad.json" --wait --json >"$T/bad.out" 2>/dev/null || rc=$?
[ "$rc" = 4 ] || fail "bad.lua: exit $rc, expected 4"
"$JG" "$T/bad.out" results.1.error | grep -q 'bad.lua:2: one gives up' || fail "bad.lua: error"
[ "$("$JG" "$T/bad.out" results.0.ok)" = true ] || fail "bad.lua: worker 0"
log "ok: a failing lambda: exit 4, $("$JG" "$T/bad.out" results.1.error)"

# A platform key the client does not trust: refused before anything is provisioned.
rc=0
"$PSL" job submit "$EXAMPLES/pi.lua" --node "$A" --servers-from-node --owner "$T/owner.key" \
    --trust-platform "$(printf '%064d' 0)" --job-file "$T/untrusted.json" 2>"$T/untrusted.err" || rc=$?
[ "$rc" = 1 ] || fail "untrusted platform: exit $rc, expected 1"
grep -q 'no --trust-platform names' "$T/untrusted.err" || fail "untrusted platform: message"
[ ! -e "$T/untrusted.json" ] || fail "untrusted platform: a job file was written"
log "ok: an untrusted platform key is refused: $(cat "$T/untrusted.err")"

curl -sf "$A/metrics" | grep -q '^psl_node_jobs_total{event="done"} 2$' || fail "metrics: done jobs (the failing lambda also returned a result)"
stop_node a
pass
