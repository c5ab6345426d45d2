#!/usr/bin/env bash
# node_http.sh: psl-node's HTTP API refuses bad requests with the right status and a JSON error
# saying what was wrong: bad JSON, missing or mistyped fields, bad base64 and hex, a forged
# capsule, an oversized body (413, before it is read whole), unknown jobs and paths (404), wrong
# methods (405), a bundle for a worker that is not waiting (409); and it stays up and healthy.
. "$(dirname "$0")/lib.sh" "$@"
. "$(dirname "$0")/node_lib.sh" "$@"

cd "$T" || fail "cd"
"$PSL" keygen --out "$T/owner.key" >/dev/null || fail "keygen"
start_node a --fabric inproc --embedded-servers 1
A=${NURL[a]}
body() { printf '%s' "$1" >"$T/req.json"; echo "$T/req.json"; }
N0=$(printf '%064d' 0)

expect_error 400 POST "$A/v1/jobs" "$(body '{"workers": 1,')" 'not valid JSON'
expect_error 400 POST "$A/v1/jobs" "$(body '[1, 2]')" 'JSON object'
expect_error 400 POST "$A/v1/jobs" "$(body '{}')" "missing field 'workers'"
expect_error 400 POST "$A/v1/jobs" "$(body '{"workers": "2"}')" "'workers' must be an integer"
expect_error 400 POST "$A/v1/jobs" "$(body '{"workers": 100000}')" "'workers' must be an integer 1..64"
expect_error 400 POST "$A/v1/jobs" "$(body '{"workers": 1}')" "missing field 'capsule'"
expect_error 400 POST "$A/v1/jobs" "$(body '{"workers": 1, "capsule": "###"}')" 'not valid base64'
expect_error 400 POST "$A/v1/jobs" "$(body '{"workers": 1, "capsule": 7}')" 'base64 string'
expect_error 400 POST "$A/v1/jobs" "$(body '{"workers": 1, "capsule": "AAAA", "nonces": ["zz"]}')" 'hex'
expect_error 400 POST "$A/v1/jobs" "$(body "{\"workers\": 2, \"capsule\": \"AAAA\", \"nonces\": [\"$N0\"]}")" 'one per worker'
expect_error 400 POST "$A/v1/jobs" "$(body "{\"workers\": 1, \"capsule\": \"AAAA\", \"nonces\": [\"$N0\"], \"x\": 1}")" "unknown field 'x'"
expect_error 400 POST "$A/v1/jobs" "$(body "{\"workers\": 1, \"capsule\": \"AAAA\", \"nonces\": [\"$N0\"]}")" 'metadata does not verify'
expect_error 400 POST "$A/v1/jobs" "" 'needs a JSON body'

# A capsule whose owner signature is broken (one byte flipped in a real metadata).
"$PSL" capsule create --owner "$T/owner.key" --replica "$(printf '%064d' 1)" --out "$T/c.pslx" >/dev/null ||
    fail "capsule create"
python3 - "$T/c.pslx" "$N0" >"$T/forged.json" <<'PY' || fail "python3"
import base64, json, struct, sys
d = open(sys.argv[1], "rb").read()
n = struct.unpack("<I", d[8:12])[0]
meta = bytearray(d[12:12 + n]); meta[-1] ^= 1
print(json.dumps({"workers": 1, "capsule": base64.b64encode(bytes(meta)).decode(), "nonces": [sys.argv[2]]}))
PY
expect_error 400 POST "$A/v1/jobs" "$T/forged.json" 'does not verify'

# Oversized bodies: refused with 413 whether the length is announced or not.
head -c $((5 << 20)) /dev/zero | tr '\0' ' ' >"$T/big.json"
expect_error 413 POST "$A/v1/jobs" "$T/big.json" 'larger than 4194304'
code=$(curl -s -o "$T/http.body" -w '%{http_code}' -X POST -H 'Transfer-Encoding: chunked' \
    --data-binary "@$T/big.json" "$A/v1/jobs")
[ "$code" = 413 ] || fail "chunked oversized body: $code"
log "ok: a chunked oversized body -> 413"

expect_error 404 GET "$A/v1/jobs/$(printf '%032d' 0)" 'no such job'
expect_error 404 GET "$A/v1/jobs/xyz" 'job ids are 32 hex'
expect_error 404 GET "$A/v2/anything" 'unknown path'
expect_error 405 DELETE "$A/v1/status" 'use GET'
expect_error 405 GET "$A/v1/jobs" 'use POST'
expect_error 400 POST "$A/v1/functions" "$(body '{}')" "field 'name'"

# A real job, then bundles that are refused.
"$PSL" job submit "$EXAMPLES/pi.lua" --node "$A" --servers-from-node --owner "$T/owner.key" \
    --job-file "$T/j.json" --wait --quiet >/dev/null 2>&1 || fail "job submit"
JOB=$("$JG" "$T/j.json" nodes.0.job)
expect_error 400 POST "$A/v1/jobs/$JOB/provision" "$(body '{"bundles": ["%%%"]}')" 'not valid base64'
expect_error 400 POST "$A/v1/jobs/$JOB/provision" "$(body '{"bundles": "AAAA"}')" "'bundles' must be an array"
expect_error 400 POST "$A/v1/jobs/$JOB/provision" "$(body '{"bundles": [null, null]}')" 'has 2 entries'
expect_error 409 POST "$A/v1/jobs/$JOB/provision" "$(body '{"bundles": ["AAAA"]}')" 'not waiting'
expect_error 404 POST "$A/v1/jobs/$(printf '%032d' 0)/provision" "$(body '{"bundles": ["AAAA"]}')" 'no such job'

[ "$(http GET "$A/healthz")" = 200 ] || fail "healthz after the bad requests"
curl -sf "$A/metrics" | grep -q '^psl_node_http_too_large_total [1-9]' || fail "metrics: too_large"
stop_node a
pass
