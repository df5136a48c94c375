#!/usr/bin/env bash
# Soak: `consentgate serve` on loopback under mixed load for a bounded time, reporting what a
# "may I use this?" caller sees while everything else runs at once:
#   - wrk on POST /v1/check at a fixed offered rate (RATE, default 5000 requests/s: each of the
#     C=10 connections waits C/RATE between requests), random members; p50/p90/p99 and the
#     achieved requests/s from wrk's histogram;
#   - a loop of 10 000-item POST /v1/check/batch;
#   - one member writing 10 setting changes per second (PUT /v1/me/consents/genai_training);
#   - a loop of full log verifications (GET /v1/log/verify) and tile reads;
# then checks that every acknowledged write is in the ledger and the log verifies.
#
#   [RATE=5000] [BACKGROUND=0] benchmarks/soak.sh [SECONDS] [MEMBERS] [STORE]
#     SECONDS  default 30
#     MEMBERS  default 100000
#     STORE    default sqlite:$WORK/ledger.sqlite; a postgres:// URL runs it on PostgreSQL, and
#              with PG_RESTART=1 the cluster is restarted halfway (pg_ctlcluster; needs sudo)
#
# wrk and curl come from Debian (installed on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-30}"
MEMBERS="${2:-100000}"
WORK="${BENCH_DIR:-/tmp/consentgate-soak}"
STORE="${3:-sqlite:$WORK/ledger.sqlite}"
PORT="${PORT:-18182}"
TARGET="${CARGO_TARGET_DIR:-target}"
SUDO=""; if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
for tool in wrk curl jq; do
  command -v "$tool" >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "$tool"
done
cargo build --release -q -p consentgate
BIN="$TARGET/release/consentgate"
rm -rf "$WORK" && mkdir -p "$WORK"
export CG_DATA_DIR="$WORK/data"
"$BIN" keys init -q > /dev/null
"$BIN" generate --members "$MEMBERS" --content 1000 --out "$WORK/corpus" -q > /dev/null
"$BIN" consent import "$WORK/corpus/consent.parquet" "$WORK/corpus/members.parquet" \
  "$WORK/corpus/residences.parquet" "$WORK/corpus/notices.parquet" --store "$STORE" -q > /dev/null
"$BIN" log checkpoint --store "$STORE" -q > /dev/null
SERVICE=$("$BIN" token issue --role service --store "$STORE" -q)
AUDITOR=$("$BIN" token issue --role auditor --store "$STORE" -q)
MEMBER=$("$BIN" token issue --role member --member 1 --store "$STORE" -q)
if curl -s -o /dev/null -m 2 "http://127.0.0.1:$PORT/healthz"; then
  echo "error: something already answers on port $PORT (an earlier serve still draining?); PORT=... picks another" >&2
  exit 1
fi
"$BIN" serve --store "$STORE" --listen "127.0.0.1:$PORT" > "$WORK/serve.log" 2>&1 &
SERVER=$!
PIDS=()
cleanup() { kill "${PIDS[@]}" "$SERVER" 2>/dev/null || true; }
trap cleanup EXIT
URL="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do curl -sf "$URL/healthz" >/dev/null && break; sleep 0.2; done
# A server left over on the port (or one that failed to start) would make every figure wrong.
if ! kill -0 "$SERVER" 2>/dev/null || ! curl -sf "$URL/healthz" >/dev/null; then
  echo "error: consentgate serve is not running on port $PORT (see below; PORT=... picks another)" >&2
  cat "$WORK/serve.log" >&2
  exit 1
fi

# The batch body: 10 000 random members.
python3 - "$MEMBERS" > "$WORK/batch.json" <<'PY'
import json, random, sys
random.seed(11)
n = int(sys.argv[1])
print(json.dumps({"items": [{"member_id": random.randint(1, n), "purpose": "genai_training"} for _ in range(10000)]}))
PY
END=$(( $(date +%s) + SECS ))
batch_loop() {
  local n=0 slow=0
  while [ "$(date +%s)" -lt "$END" ]; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -m 130 -H "Authorization: Bearer $SERVICE" \
      -H 'content-type: application/json' --data-binary "@$WORK/batch.json" "$URL/v1/check/batch")
    n=$((n + 1)); [ "$code" = 200 ] || slow=$((slow + 1))
  done
  echo "batches: $n sent, $slow not 200 (429 = the token's batch rate limit)" > "$WORK/batch.out"
}
writer_loop() {
  local ok=0 other=0 granted=false
  while [ "$(date +%s)" -lt "$END" ]; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -m 10 -X PUT -H "Authorization: Bearer $MEMBER" \
      -H 'content-type: application/json' -d "{\"granted\": $granted}" "$URL/v1/me/consents/genai_training")
    if [ "$code" = 200 ]; then ok=$((ok + 1)); else other=$((other + 1)); fi
    if [ "$granted" = false ]; then granted=true; else granted=false; fi
    sleep 0.1
  done
  echo "$ok" > "$WORK/writes.acked"
  echo "member writes: $ok acknowledged, $other refused (429/503)" > "$WORK/writer.out"
}
verify_loop() {
  local n=0 bad=0
  while [ "$(date +%s)" -lt "$END" ]; do
    v=$(curl -s -m 130 -H "Authorization: Bearer $AUDITOR" "$URL/v1/log/verify" | jq -r '.verified // .error.code')
    curl -s -o /dev/null -m 30 -H "Authorization: Bearer $AUDITOR" "$URL/v1/log/tile/0/000.p/1" || true
    n=$((n + 1)); [ "$v" = true ] || bad=$((bad + 1))
  done
  echo "log verifications: $n, $bad not verified" > "$WORK/verify.out"
}
# BACKGROUND=0 runs the checks alone (the floor to compare with).
if [ "${BACKGROUND:-1}" = 1 ]; then
  batch_loop & PIDS+=($!)
  writer_loop & PIDS+=($!)
  verify_loop & PIDS+=($!)
fi
if [ "${PG_RESTART:-0}" = 1 ] && [[ "$STORE" == postgres* ]]; then
  ( sleep $((SECS / 2)); echo "restarting PostgreSQL"; $SUDO pg_ctlcluster "$(ls /etc/postgresql | head -n 1)" main restart ) &
  PIDS+=($!)
fi
RATE="${RATE:-5000}"
C=10
DELAY_MS=$(python3 -c "print($C * 1000 / $RATE)")
cat > "$WORK/check.lua" <<LUA
math.randomseed(7)
-- An offered rate, not a closed loop at saturation: each connection waits between requests.
delay = function() return $DELAY_MS end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $SERVICE"
request = function()
  return wrk.format(nil, "/v1/check", nil, string.format('{"member_id": %d, "purpose": "genai_training"}', math.random(1, $MEMBERS)))
end
LUA
echo "== soak ${SECS}s on $STORE: wrk -t2 -c$C POST /v1/check offered at ${RATE}/s, with 10 000-item batches, a member writing 10/s and full log verifications"
wrk -t2 -c"$C" -d"${SECS}s" --latency -s "$WORK/check.lua" "$URL" \
  | grep -E "Requests/sec|^ +50%|^ +90%|^ +99%|Non-2xx|Socket errors" || true
# (Only the load loops: a bare `wait` would wait for the server too.)
if [ "${#PIDS[@]}" -gt 0 ]; then wait "${PIDS[@]}" 2>/dev/null || true; fi
cat "$WORK/batch.out" "$WORK/writer.out" "$WORK/verify.out" 2>/dev/null || true
# Nothing acknowledged is lost: the member's history holds every acknowledged write, and the
# log verifies.
ACKED=$(cat "$WORK/writes.acked" 2>/dev/null || echo 0)
STORED=$(curl -s -H "Authorization: Bearer $MEMBER" "$URL/v1/me/history" | jq '[.[] | select(.source == "settings")] | length')
echo "acknowledged writes: $ACKED; in the ledger: $STORED"
[ "$STORED" -ge "$ACKED" ] || { echo "LOST WRITES" >&2; exit 1; }
curl -s -H "Authorization: Bearer $AUDITOR" "$URL/v1/log/verify" | jq -c '{verified, size: .report.size}'
