#!/usr/bin/env bash
# cli.sh: end-to-end test of the psl command as a user runs it: key files, capsule creation,
# the demo, verification of good and tampered exports, log output, exit codes and errors.
# Usage: tests/cli.sh PATH_TO_PSL
set -u
PSL=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
pass=0

check() { # check DESCRIPTION EXPECTED_RC COMMAND...
    local desc=$1 want=$2
    shift 2
    "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    if [ "$rc" -ne "$want" ]; then
        echo "FAIL: $desc: exit $rc, expected $want"
        sed 's/^/  | /' "$T/out" "$T/err" | head -20
        fails=$((fails + 1))
    else
        pass=$((pass + 1))
    fi
}
expect_grep() { # expect_grep DESCRIPTION PATTERN FILE
    if grep -qE "$2" "$3"; then pass=$((pass + 1)); else
        echo "FAIL: $1: no '$2' in output"; sed 's/^/  | /' "$3" | head -20; fails=$((fails + 1)); fi
}

check "help" 0 "$PSL" --help
expect_grep "help lists commands" "capsule verify" "$T/out"
check "no command is a usage error" 2 "$PSL"
check "unknown command" 2 "$PSL" frobnicate
expect_grep "unknown command message" "unknown command 'frobnicate'" "$T/err"

check "keygen owner" 0 "$PSL" keygen --out "$T/owner.key"
expect_grep "keygen prints the public key" "^[0-9a-f]{64}$" "$T/out"
[ "$(stat -c %a "$T/owner.key")" = 600 ] && pass=$((pass + 1)) || { echo "FAIL: key file mode is not 0600"; fails=$((fails + 1)); }
cp "$T/owner.key" "$T/owner.copy"
check "keygen refuses to overwrite" 3 "$PSL" keygen --out "$T/owner.key"
expect_grep "overwrite message" "already exists" "$T/err"
cmp -s "$T/owner.key" "$T/owner.copy" && pass=$((pass + 1)) || { echo "FAIL: existing key file changed"; fails=$((fails + 1)); }
check "keygen bad type" 2 "$PSL" keygen --type nonsense --out "$T/x.key"
check "keygen server" 0 "$PSL" keygen --type server --out "$T/s1.key"
S1=$(cat "$T/out")
check "keygen server 2" 0 "$PSL" keygen --type server --out "$T/s2.key"
check "keygen capsule" 0 "$PSL" keygen --type capsule --out "$T/capsule.key"

check "capsule create" 0 "$PSL" capsule create --owner "$T/owner.key" --replica "$S1" \
    --replica "$T/s2.key" --label "cli test" --quorum 2 --out "$T/c.pslx"
expect_grep "create prints the name" "^[0-9a-f]{64}$" "$T/out"
NAME=$(cat "$T/out")
check "create needs a replica" 2 "$PSL" capsule create --owner "$T/owner.key" --out "$T/d.pslx"
check "create quorum > n" 2 "$PSL" capsule create --owner "$T/owner.key" --replica "$S1" --quorum 2 --out "$T/d.pslx"
check "create refuses to overwrite" 3 "$PSL" capsule create --owner "$T/owner.key" --replica "$S1" --out "$T/c.pslx"
check "verify a new capsule" 0 "$PSL" capsule verify "$T/c.pslx"
expect_grep "verify shows the name" "capsule +$NAME" "$T/out"
expect_grep "verify shows replicas" "replicas +n=2 k=2" "$T/out"
expect_grep "verify result" "result +VERIFIED" "$T/out"

chmod 644 "$T/owner.key"
check "owner key readable by others is refused" 3 "$PSL" capsule create --owner "$T/owner.key" --replica "$S1" --out "$T/e.pslx"
expect_grep "mode message" "chmod 600" "$T/err"
chmod 600 "$T/owner.key"

check "demo" 0 "$PSL" demo --data "$T/data"
expect_grep "demo verified" "VERIFIED" "$T/out"
expect_grep "demo tamper rejected" "tamper .*rejected" "$T/out"
check "demo again (same dir)" 0 "$PSL" demo --data "$T/data"
X="$T/data/demo.pslx"
check "verify demo with key" 0 "$PSL" capsule verify "$X" --key "$T/data/demo-capsule.key"
expect_grep "ops decrypted" "ops=40" "$T/out"
expect_grep "sync links" "sync +6 record" "$T/out"
check "verify with a wrong capsule key" 1 "$PSL" capsule verify "$X" --key "$T/capsule.key"
expect_grep "wrong key is a decrypt failure" "decrypt" "$T/out"
check "verify long ago: certificates not yet valid" 1 "$PSL" capsule verify "$X" --at 1000
expect_grep "expired" "cert_expired" "$T/out"
check "log" 0 "$PSL" capsule log "$X"
[ "$(wc -l <"$T/out")" -eq 20 ] && pass=$((pass + 1)) || { echo "FAIL: log is not one line per record"; fails=$((fails + 1)); }
if grep -q "worker0/key" "$T/out"; then echo "FAIL: log without --key shows plaintext"; fails=$((fails + 1)); else pass=$((pass + 1)); fi
check "log with key" 0 "$PSL" capsule log "$X" --key "$T/data/demo-capsule.key"
expect_grep "log with key shows operations" 'put "worker0/key01"' "$T/out"

# Tamper with the export on disk: one byte in the middle of the file.
size=$(stat -c %s "$X")
cp "$X" "$T/bad.pslx"
printf '\x5a' | dd of="$T/bad.pslx" bs=1 seek=$((size / 2)) conv=notrunc status=none
check "tampered export fails" 1 "$PSL" capsule verify "$T/bad.pslx"
cat "$T/out" "$T/err" >"$T/both"
expect_grep "tampered result" "NOT VERIFIED|not a valid capsule export" "$T/both"
head -c $((size - 20)) "$X" >"$T/trunc.pslx"
check "truncated export fails" 1 "$PSL" capsule verify "$T/trunc.pslx"
expect_grep "truncated message" "not a valid capsule export" "$T/err"
check "missing file" 3 "$PSL" capsule verify "$T/nope.pslx"
check "verify usage" 2 "$PSL" capsule verify
check "verify --help" 0 "$PSL" capsule verify --help

# graph: DOT with one cluster per writer, prev edges and dashed SYNC edges
check "graph" 0 "$PSL" capsule graph "$X"
expect_grep "graph is DOT" "^digraph capsule" "$T/out"
expect_grep "graph has writer clusters" "subgraph cluster_0" "$T/out"
expect_grep "graph has SYNC merges" "style=dashed" "$T/out"
check "graph to a file" 0 "$PSL" capsule graph "$X" --out "$T/g.dot"
expect_grep "graph file" "^digraph capsule" "$T/g.dot"
check "graph of a tampered export" 1 "$PSL" capsule graph "$T/trunc.pslx"
check "graph usage" 2 "$PSL" capsule graph

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
