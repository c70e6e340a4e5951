#!/usr/bin/env bash
# Peak memory (VmHWM) of a sandbox taking eight 100 MB PUTs at once, for each
# trailkeeper binary given: bash bench/sandboxbody/run.sh ./before ./after
# Uploads above 8 MiB are streamed to files (under --data-dir, given as
# SANDBOX_FLAGS, or a temporary directory), so what remains is what reading
# costs.
set -euo pipefail
body=$(mktemp)
trap 'rm -f "$body"' EXIT
head -c 100000000 /dev/urandom > "$body"
auth='Authorization: AWS4-HMAC-SHA256 Credential=111111111111/20261207/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=x'
for bin in "$@"; do
  "$bin" sandbox --addr 127.0.0.1:4599 ${SANDBOX_FLAGS:-} > /dev/null 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:4599/_sandbox/health > /dev/null && break; sleep 0.1; done
  curl -s -X PUT -H "$auth" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" http://127.0.0.1:4599/bodies > /dev/null
  for i in $(seq 8); do
    curl -s -X PUT -H "$auth" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" --data-binary @"$body" http://127.0.0.1:4599/bodies/o$i -o /dev/null &
  done
  for job in $(jobs -p); do [ "$job" = "$pid" ] || wait "$job"; done
  echo "$bin: $(grep VmHWM /proc/$pid/status)"
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
