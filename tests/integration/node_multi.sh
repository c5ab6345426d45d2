#!/usr/bin/env bash
# node_multi.sh: a federation of real processes: one nats-server, three psl-capsuled and two
# psl-nodes (own data dirs, platform keys and ports). A job with workers on both nodes converges
# (counter.lua: exact per-worker sums after a barrier), returns verified results, and the capsule
# fetched from the storage servers verifies. Then a long job: one node is killed with SIGKILL in
# the middle, `psl job status` names exactly the workers that were on it as failed (and the
# others succeed), and what was written still verifies.
. "$(dirname "$0")/lib.sh" "$@"
. "$(dirname "$0")/node_lib.sh" "$@"

cd "$T" || fail "cd"
start_nats
make_capsule 3 2
start_servers
start_node a --fabric "$FABRIC" --embedded-servers 0
start_node b --fabric "$FABRIC" --embedded-servers 0
A=${NURL[a]}
B=${NURL[b]}
PKA=$("$PSL" status --node "$A" --json | tee "$T/a.status" >/dev/null; "$JG" "$T/a.status" platform_pk)
PKB=$("$PSL" status --node "$B" --json | tee "$T/b.status" >/dev/null; "$JG" "$T/b.status" platform_pk)
[ "$PKA" != "$PKB" ] || fail "two nodes with one platform key"

submit() { # JOBFILE SCRIPT WORKERS [extra...]
    local jf=$1 script=$2 n=$3
    shift 3
    "$PSL" job submit "$script" --node "$A" --node "$B" --workers "$n" --capsule "$CAP/capsule.pslx" \
        --capsule-key "$CAP/capsule.key" --owner "$CAP/owner.key" --trust-platform "$PKA" \
        --trust-platform "$PKB" --job-file "$jf" "$@"
}

rc=0
submit "$T/counter.json" "$EXAMPLES/counter.lua" 4 --args 100 --wait --json >"$T/counter.out" 2>"$T/counter.err" || rc=$?
[ "$rc" = 0 ] || { cat "$T/counter.err" "$T/counter.out"; fail "counter job: exit $rc"; }
J="$JG $T/counter.out"
for i in 0 1 2 3; do
    [ "$($J results.$i.verified)" = true ] || fail "worker $i not verified"
done
[ "$($J results.0.node)" = "$A" ] && [ "$($J results.1.node)" = "$B" ] || fail "workers not spread over both nodes"
[ "$($J results.0.result.per_worker_sum)" = 400 ] || fail "the workers did not converge: $($J results.0.result)"
[ "$($J chain_verified)" = true ] || fail "chain not verified through a node"
"$PSL" capsule fetch "$CAP/capsule.pslx" --out "$T/fetch1.pslx" --fabric "$FABRIC" >/dev/null ||
    fail "psl capsule fetch"
"$PSL" capsule verify "$T/fetch1.pslx" --key "$CAP/capsule.key" >"$T/verify1.txt" ||
    { cat "$T/verify1.txt"; fail "the fetched capsule does not verify"; }
log "ok: 4 workers on 2 nodes converged (per-worker sum 400), results and capsule verified"

# A long job; node b is killed with SIGKILL while it runs.
cat >"$T/long.lua" <<'LUA'
function main()
  local me = psl.worker()
  for i = 1, 240 do
    psl.put("long/" .. me .. "/" .. i, i)
    if i % 10 == 0 then psl.flush() end
    psl.sleep(25)
  end
  return me
end
LUA
submit "$T/long.json" "$T/long.lua" 4 --quiet >/dev/null 2>"$T/long.err" || { cat "$T/long.err"; fail "long job submit"; }
for _ in $(seq 100); do
    "$PSL" job status "$T/long.json" --json --quiet >"$T/st.out" 2>/dev/null
    [ "$("$JG" "$T/st.out" results.1.records 2>/dev/null || echo 0)" -ge 2 ] && break
    sleep 0.1
done
kill -KILL "${NPID[b]}"
wait "${NPID[b]}" 2>/dev/null
log "node b killed with SIGKILL mid-job"
rc=0
"$PSL" job status "$T/long.json" --wait --json --quiet >"$T/long.out" 2>/dev/null || rc=$?
[ "$rc" = 4 ] || { cat "$T/long.out"; fail "job status after the kill: exit $rc, expected 4"; }
J="$JG $T/long.out"
for i in 1 3; do
    [ "$($J results.$i.ok)" = false ] || fail "worker $i (on node b) should have failed"
    $J results.$i.error | grep -q "node $B unreachable" || fail "worker $i: error '$($J results.$i.error)'"
done
for i in 0 2; do
    [ "$($J results.$i.ok)" = true ] && [ "$($J results.$i.verified)" = true ] ||
        fail "worker $i (on node a) should have succeeded: $($J results.$i.error)"
done
log "ok: exactly workers 1 and 3 (node b) failed: $($J results.1.error)"
"$PSL" capsule fetch "$CAP/capsule.pslx" --out "$T/fetch2.pslx" --fabric "$FABRIC" >/dev/null ||
    fail "psl capsule fetch after the kill"
"$PSL" capsule verify "$T/fetch2.pslx" --key "$CAP/capsule.key" >"$T/verify2.txt" ||
    { cat "$T/verify2.txt"; fail "the capsule does not verify after the kill"; }
log "ok: what was written verifies: $(grep -m1 -i 'records' "$T/verify2.txt")"
stop_node a
for i in 0 1 2; do stop_server $i; done
pass
