#!/usr/bin/env bash
# The same benchmarks for two builds of ferry, in one run on one machine:
# REV (built in a scratch worktree) and the working tree. Rounds alternate
# (before, after, before, after, …) so that a noisy stretch of the machine
# hits both. Each benchmark also runs its peer (nginx, cp/ncat/socat, ncat
# --chat) every time, which shows how much the machine itself moved.
# Prints every round's output, labelled, then the figures side by side.
# Usage: bench/before_after.sh REV [ROUNDS]   (default 2 rounds)
#        BEFORE_SRC, BEFORE_TARGET: where REV is checked out and built.
#        BENCHES="web transfer chat" to choose (default all three).
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: bench/before_after.sh REV [ROUNDS]}
rounds=${2:-2}
benches=${BENCHES:-web transfer chat}
before_src=${BEFORE_SRC:-/var/tmp/ferry-before-$(git rev-parse --short "$rev")}
before_target=${BEFORE_TARGET:-$before_src-target}
if [ ! -d "$before_src" ]; then
  git worktree add -f "$before_src" "$rev" -q
fi
(cd "$before_src" && CARGO_TARGET_DIR=$before_target cargo build --release -q)
before=$before_target/release/ferry
# AFTER_BIN: a build made elsewhere, instead of the working tree's.
if [ -n "${AFTER_BIN:-}" ]; then
  after=$AFTER_BIN
else
  cargo build --release -q
  after=$PWD/target/release/ferry
fi
out=$(mktemp -d /var/tmp/ferry-before-after.XXXXXX)
echo "before: $rev ($("$before" --version)); after: working tree ($("$after" --version))"
for b in $benches; do
  for r in $(seq 1 "$rounds"); do
    for side in before after; do
      bin=$before; [ $side = after ] && bin=$after
      echo "=== $b, round $r, $side"
      FERRY_BIN=$bin ROUNDS=${CHAT_ROUNDS:-3} STALL_ROUNDS=1 "bench/$b.sh" 2>&1 | tee "$out/$b.$r.$side"
    done
  done
done
echo
echo "=== side by side (lines that name ferry, per round)"
for b in $benches; do
  for r in $(seq 1 "$rounds"); do
    for side in before after; do
      echo "--- $b round $r $side"
      grep -iE 'ferry|ratio|/' "$out/$b.$r.$side" | grep -v '^=' | head -30 || true
    done
  done
done
echo "(all output kept in $out)"
