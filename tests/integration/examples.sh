#!/usr/bin/env bash
# examples.sh: runs every example of examples/ through `psl run --json` (the embedded default:
# enclave processes, embedded storage servers, in-process fabric) and checks each result, the
# durability and the capsule audit; then checks that failing lambdas end with a clear error
# naming the cause and the line, and that the export verifies with `psl capsule verify`.
# Usage: examples.sh PSL JSON_GET EXAMPLES_DIR
set -euo pipefail
if [ -z "${PSL_IT_WRAPPED:-}" ]; then
    export PSL_IT_WRAPPED=1
    exec timeout -k 10 "${PSL_IT_TIME_LIMIT:-300}" bash "$0" "$@"
fi
PSL=$1
JG=$2
EX=$3
T=$(mktemp -d "${TMPDIR:-/tmp}/psl-examples.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: examples: $*"; [ -f "$T/err" ] && tail -n 20 "$T/err"; exit 1; }
get() { "$JG" "$T/out.json" "$1"; }

run() { # name workers [psl run args...]
    local name=$1 workers=$2
    shift 2
    local rc=0
    "$PSL" run "$EX/$name" --workers "$workers" --data "$T/data" --json "$@" >"$T/out.json" 2>"$T/err" || rc=$?
    echo "$rc" >"$T/rc"
}

check_common() { # workers
    [ "$(cat "$T/rc")" = 0 ] || fail "$1: exit $(cat "$T/rc")"
    [ "$(get workers)" = "$2" ] || fail "$1: workers"
    [ "$(get chain_verified)" = true ] || fail "$1: chain not verified"
    [ "$(get durable)" = true ] || fail "$1: not durable"
    [ "$(get forks)" = 0 ] || fail "$1: forks"
    for ((i = 0; i < $2; i++)); do
        [ "$(get results.$i.verified)" = true ] || fail "$1: worker $i result not verified"
        [ "$(get results.$i.worker)" = "$i" ] || fail "$1: worker index"
    done
    "$JG" "$T/out.json" records >/dev/null && "$JG" "$T/out.json" ops >/dev/null &&
        "$JG" "$T/out.json" capsule >/dev/null || fail "$1: summary fields missing"
    "$PSL" capsule verify "$(get export)" --key "$(get capsule_key_file)" >"$T/verify" 2>&1 ||
        { cat "$T/verify"; fail "$1: psl capsule verify of the export failed"; }
    echo "ok: $1 ($(get records) records, $(get ops) ops, chain verified)"
}

run pi.lua 4 --args 20000
check_common pi.lua 4
pi=$(get results.0.result.pi)
awk -v p="$pi" 'BEGIN { exit !(p > 3.0 && p < 3.3) }' || fail "pi.lua: estimate $pi"
[ "$(get results.0.result.darts)" = 80000 ] || fail "pi.lua: darts"

run counter.lua 3 --args 100
check_common counter.lua 3
[ "$(get results.0.result.expected)" = 300 ] || fail "counter.lua: expected"
[ "$(get results.0.result.per_worker_sum)" = 300 ] || fail "counter.lua: the per-worker sum must be exact"
shared=$(get results.0.result.shared_counter)
[ "$shared" -ge 100 ] && [ "$shared" -le 300 ] || fail "counter.lua: shared counter $shared out of range"

run search.lua 3 --args 30
check_common search.lua 3
best=$(get results.0.result.best)
awk -v b="$best" 'BEGIN { exit !(b >= 0 && b < 2.0) }' || fail "search.lua: best $best"

run wordcount.lua 1 --args-file "$EX/data/lighthouse.txt"
check_common wordcount.lua 1
words1=$(get results.0.result.words)
run wordcount.lua 3 --args-file "$EX/data/lighthouse.txt"
check_common wordcount.lua 3
[ "$(get results.0.result.words)" = "$words1" ] || fail "wordcount.lua: 3 workers counted differently from 1"
[ "$(get results.0.result.top.0.word)" = the ] || fail "wordcount.lua: top word"

# Thread mode: the same enclave loop on threads of psl itself (and so under the sanitizers'
# leak checker in the ASan build).
run counter.lua 2 --args 50 --thread-mode
check_common "counter.lua --thread-mode" 2
[ "$(get results.0.result.per_worker_sum)" = 100 ] || fail "counter.lua --thread-mode: sum"

# A failing lambda: exit 4, the error names the line; the others still report.
cat >"$T/bad.lua" <<'LUA'
function main()
  local me = psl.worker()
  if me == 1 then
    error("worker one gives up")
  end
  return "fine"
end
LUA
rc=0
"$PSL" run "$T/bad.lua" --workers 2 --data "$T/data" --json >"$T/out.json" 2>"$T/err" || rc=$?
[ "$rc" = 4 ] || fail "bad.lua: exit $rc, expected 4"
[ "$(get results.0.ok)" = true ] || fail "bad.lua: worker 0 should succeed"
[ "$(get results.1.ok)" = false ] || fail "bad.lua: worker 1 should fail"
get results.1.error | grep -q 'bad.lua:4: worker one gives up' || fail "bad.lua: error $(get results.1.error)"
echo "ok: a failing lambda reports its line: $(get results.1.error)"

# A runaway lambda hits its instruction budget; the text output names the cause.
printf 'function main()\n  while true do end\nend\n' >"$T/spin.lua"
rc=0
"$PSL" run "$T/spin.lua" --workers 1 --insn 2000000 --data "$T/data" >"$T/out.txt" 2>"$T/err" || rc=$?
[ "$rc" = 4 ] || fail "spin.lua: exit $rc"
grep -q 'spin.lua:2: .*budget' "$T/out.txt" || { cat "$T/out.txt"; fail "spin.lua: no budget error"; }
echo "ok: a runaway lambda: $(grep FAILED "$T/out.txt")"

# A memory bomb hits the memory cap.
printf 'function main()\n  local s = string.rep("x", 1 << 30)\n  return #s\nend\n' >"$T/bomb.lua"
rc=0
"$PSL" run "$T/bomb.lua" --workers 1 --mem-mb 16 --data "$T/data" >"$T/out.txt" 2>"$T/err" || rc=$?
[ "$rc" = 4 ] || fail "bomb.lua: exit $rc"
grep -qi 'memory' "$T/out.txt" || { cat "$T/out.txt"; fail "bomb.lua: no memory error"; }
echo "ok: a memory bomb: $(grep FAILED "$T/out.txt")"
echo "PASS: examples"
