#!/usr/bin/env bash
# CPU of 'trailkeeper --version' (process start: package init, the binary
# paged in), averaged over N runs, for each binary given:
#   bash bench/startup/run.sh ./before ./after
# and the slowest package inits of the last one (GODEBUG=inittrace=1).
set -euo pipefail
runs=${RUNS:-50}
for bin in "$@"; do
  /usr/bin/time -f "%U %S %e" -o /tmp/startup.$$ bash -c "for i in \$(seq $runs); do '$bin' --version >/dev/null; done"
  read -r user sys wall < /tmp/startup.$$
  awk -v b="$bin" -v u="$user" -v s="$sys" -v w="$wall" -v n="$runs" \
    'BEGIN { printf "%s: %.1f ms CPU (%.1f user, %.1f sys), %.1f ms wall per run, %d runs\n", b, (u+s)*1000/n, u*1000/n, s*1000/n, w*1000/n, n }'
done
rm -f /tmp/startup.$$
last="${@: -1}"
echo "slowest package inits of $last:"
GODEBUG=inittrace=1 "$last" --version 2>&1 >/dev/null | awk '/^init/ { print $5, $6, $2 }' | sort -rn | head -5
