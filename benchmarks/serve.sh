#!/usr/bin/env bash
# Load on the "may I use this?" endpoint: wrk against `consentgate serve` on loopback with the
# embedded store, random members of a generated corpus, at two concurrencies. Prints
# throughput and latency percentiles (p50, p99) from wrk's own histogram.
#
#   benchmarks/serve.sh [MEMBERS] [SECONDS]     # defaults 100000 and 15
#
# wrk comes from Debian (installed on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
MEMBERS="${1:-100000}"
SECS="${2:-15}"
TARGET="${CARGO_TARGET_DIR:-target}"
WORK="${BENCH_DIR:-/tmp/consentgate-serve-bench}"
PORT="${PORT:-18181}"
if ! command -v wrk >/dev/null 2>&1; then
  SUDO=""; if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q wrk
fi
cargo build --release -q -p consentgate
BIN="$TARGET/release/consentgate"
rm -rf "$WORK" && mkdir -p "$WORK"
export CG_DATA_DIR="$WORK/data"
STORE="sqlite:$WORK/ledger.sqlite"
"$BIN" generate --members "$MEMBERS" --content 1000 --out "$WORK/corpus" -q > /dev/null
"$BIN" consent import "$WORK/corpus/consent.parquet" "$WORK/corpus/members.parquet" \
  "$WORK/corpus/residences.parquet" "$WORK/corpus/notices.parquet" --store "$STORE" -q > /dev/null
TOKEN=$("$BIN" token issue --role service --store "$STORE" -q)
"$BIN" serve --store "$STORE" --listen "127.0.0.1:$PORT" > "$WORK/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
cat > "$WORK/check.lua" <<LUA
math.randomseed(7)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
request = function()
  return wrk.format(nil, "/v1/check", nil, string.format('{"member_id": %d, "purpose": "genai_training"}', math.random(1, $MEMBERS)))
end
LUA
for C in 4 32; do
  echo "== wrk -t2 -c$C -d${SECS}s POST /v1/check ($MEMBERS members, embedded SQLite)"
  wrk -t2 -c"$C" -d"${SECS}s" --latency -s "$WORK/check.lua" "http://127.0.0.1:$PORT" \
    | grep -E "Requests/sec|^ +50%|^ +90%|^ +99%|Non-2xx|Socket errors" || true
done
