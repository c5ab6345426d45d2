#!/usr/bin/env bash
# node_func.sh: a deployed function on one psl-node (in-process fabric, 3 embedded storage
# servers). `psl deploy` attests, certifies and provisions one warm enclave with the
# rest_counter example; 20 `psl invoke`s through the gateway count correctly and every answer
# verifies (signed by the deployed enclave, sealed to the call's key); a replayed invocation is
# refused by the enclave; a second function of the same name is refused; a handler error exits 4;
# DELETE stops the function; SIGTERM stops the node cleanly.
. "$(dirname "$0")/lib.sh" "$@"
. "$(dirname "$0")/node_lib.sh" "$@"

cd "$T" || fail "cd"
"$PSL" keygen --out "$T/owner.key" >/dev/null || fail "keygen"
start_node a --fabric inproc --embedded-servers 3
A=${NURL[a]}

rc=0
"$PSL" deploy "$EXAMPLES/rest_counter.lua" --node "$A" --name counter --servers-from-node \
    --owner "$T/owner.key" --func-file "$T/counter.json" --json >"$T/deploy.out" \
    2>"$T/deploy.err" || rc=$?
[ "$rc" = 0 ] || { cat "$T/deploy.err" "$T/deploy.out"; fail "deploy: exit $rc"; }
[ "$("$JG" "$T/deploy.out" function)" = counter ] || fail "deploy: function name"
[ "$(stat -c %a "$T/counter.json")" = 600 ] || fail "the function file must be 0600"
log "ok: deployed counter (enclave $("$JG" "$T/deploy.out" enclave_pk | cut -c1-16))"

for i in $(seq 1 20); do
    rc=0
    "$PSL" invoke "$T/counter.json" --args "incr hits" --json >"$T/inv.out" 2>"$T/inv.err" || rc=$?
    [ "$rc" = 0 ] || { cat "$T/inv.err" "$T/inv.out"; fail "invoke $i: exit $rc"; }
    [ "$("$JG" "$T/inv.out" verified)" = true ] || fail "invoke $i: not verified"
    [ "$("$JG" "$T/inv.out" result.value)" = "$i" ] || { cat "$T/inv.out"; fail "invoke $i: count"; }
done
"$PSL" invoke "$T/counter.json" --args "incr other" --json >"$T/inv.out" || fail "incr other"
[ "$("$JG" "$T/inv.out" result.value)" = 1 ] || fail "other path: count"
"$PSL" invoke "$T/counter.json" --args "get hits" --json --save-request "$T/req.json" \
    >"$T/inv.out" || fail "get hits"
[ "$("$JG" "$T/inv.out" result.value)" = 20 ] || fail "get hits: $(cat "$T/inv.out")"
[ "$("$PSL" invoke "$T/counter.json" --args "get hits")" = '{"path":"hits","value":20}' ] ||
    fail "plain output"
log "ok: 20 increments through the gateway, every answer verified; get hits = 20"

# The same sealed invocation again: the node relays it, the enclave refuses it.
code=$(http POST "$A/v1/functions/counter/invoke" "$T/req.json")
[ "$code" = 409 ] || { cat "$T/http.body"; fail "replay: status $code, expected 409"; }
[ "$("$JG" "$T/http.body" err)" = replay ] || fail "replay: $(cat "$T/http.body")"
log "ok: a replayed invocation is refused: $("$JG" "$T/http.body" error)"

# A handler error: exit 4, the message names the line; the function keeps serving.
rc=0
"$PSL" invoke "$T/counter.json" --args "nonsense" 2>"$T/bad.err" || rc=$?
[ "$rc" = 4 ] || fail "bad request: exit $rc, expected 4"
grep -q 'rest_counter.lua:.*bad request' "$T/bad.err" || fail "bad request: $(cat "$T/bad.err")"
"$PSL" invoke "$T/counter.json" --args "incr hits" --json >"$T/inv.out" || fail "after error"
[ "$("$JG" "$T/inv.out" result.value)" = 21 ] || fail "after error: count"
log "ok: a handler error exits 4 ($(cat "$T/bad.err")); the function still serves"

curl -sf --max-time 5 "$A/metrics" >"$T/metrics" || fail "GET /metrics"
answered=$(sed -n 's/^psl_node_invocations_total{outcome="answered"} //p' "$T/metrics")
refused=$(sed -n 's/^psl_node_invocations_total{outcome="refused"} //p' "$T/metrics")
[ "${answered:-0}" -ge 24 ] && [ "${refused:-0}" -ge 1 ] ||
    fail "invocation metrics: answered=$answered refused=$refused"
log "ok: metrics count $answered answered and $refused refused invocations"

rc=0
"$PSL" deploy "$EXAMPLES/rest_counter.lua" --node "$A" --name counter --servers-from-node \
    --owner "$T/owner.key" --func-file "$T/dup.json" 2>"$T/dup.err" || rc=$?
[ "$rc" != 0 ] || fail "a second function named counter was deployed"
grep -q 'a function named counter runs' "$T/dup.err" || fail "dup: $(cat "$T/dup.err")"
log "ok: the name is taken: $(cat "$T/dup.err")"

code=$(http DELETE "$A/v1/functions/counter")
[ "$code" = 200 ] || fail "DELETE: status $code"
rc=0
"$PSL" invoke "$T/counter.json" --args "get hits" 2>"$T/gone.err" || rc=$?
[ "$rc" != 0 ] || fail "invoke after DELETE succeeded"
grep -q 'no function named counter' "$T/gone.err" || fail "gone: $(cat "$T/gone.err")"
log "ok: DELETE stops the function"
stop_node a
pass
