#!/usr/bin/env bash
# End-to-end build benchmark against a named peer (DuckDB) on the same generated data.
#
#   benchmarks/run.sh [CONTENT_ROWS] [MEMBERS]   # default 1000000 and rows / 10
#   CG_BIN=/path/to/consentgate benchmarks/run.sh ...   # a prebuilt binary (no cargo build)
#   BUILD_ARGS="--key-scheme vrf" benchmarks/run.sh ... # extra flags for consentgate's build
#
# MEMBERS apart from rows shows what the member commitment costs per member (docs/build.md):
# three SHA-256 for the default roster, one VRF evaluation per member with a kept row with
# `--key-scheme vrf`; DuckDB's SQL does neither.
#
# Prints consentgate's build time, rows/s, text MB/s and peak RSS, then DuckDB's time on an
# equivalent SQL (join, as-of consent, filters, regexp_replace redaction, Parquet write) and the
# ratio. DuckDB is installed from PyPI into benchmarks/.venv on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-1000000}"
MEMBERS="${2:-$((ROWS / 10))}"
TARGET="${CARGO_TARGET_DIR:-target}"
WORK="${BENCH_DIR:-/tmp/consentgate-bench-$ROWS-$MEMBERS}"
AS_OF=2025-12-01

# CG_BIN=path measures a binary built otherwise (other features, another commit) instead.
if [ -n "${CG_BIN:-}" ]; then
  BIN="$CG_BIN"
else
  cargo build --release -q -p consentgate
  BIN="$TARGET/release/consentgate"
fi
rm -rf "$WORK" && mkdir -p "$WORK"
echo "== generating $MEMBERS members, $ROWS content rows"
"$BIN" generate --members "$MEMBERS" --content "$ROWS" --out "$WORK/corpus" -q

echo "== consentgate build"
/usr/bin/time -f "%e %M %U %S" -o "$WORK/time.txt" "$BIN" build -q --json \
  --members "$WORK/corpus/members.parquet" --content "$WORK/corpus/content.parquet" \
  --consent "$WORK/corpus/consent.parquet" --residences "$WORK/corpus/residences.parquet" \
  --notices "$WORK/corpus/notices.parquet" --erasures "$WORK/corpus/erasures.parquet" \
  --as-of "$AS_OF" --out "$WORK/out" --shards 16 ${BUILD_ARGS:-} > "$WORK/manifest.json"
read -r SECS RSS_KB USER_S SYS_S < "$WORK/time.txt"

if [ ! -x benchmarks/.venv/bin/python ]; then
  python3 -m venv benchmarks/.venv
  benchmarks/.venv/bin/pip install -q duckdb
fi
echo "== duckdb (2 threads), equivalent SQL"
PEER=$(benchmarks/.venv/bin/python benchmarks/duckdb_peer.py "$WORK/corpus" "$AS_OF" "$WORK/duckdb.parquet")
read -r PEER_SECS TEXT_MB PEER_ROWS <<< "$PEER"

python3 - "$ROWS" "$SECS" "$RSS_KB" "$PEER_SECS" "$TEXT_MB" "$PEER_ROWS" "$WORK/manifest.json" "$USER_S" "$SYS_S" <<'PY'
import json, sys
rows, secs, rss_kb, peer, text_mb, peer_rows, manifest, user_s, sys_s = sys.argv[1:]
rows, secs, rss_kb, peer, text_mb = int(rows), float(secs), int(rss_kb), float(peer), float(text_mb)
m = json.load(open(manifest))
kept = m["totals"].get("include", 0) + m["totals"].get("include_redacted", 0)
cores = (float(user_s) + float(sys_s)) / secs if secs > 0 else 0.0
print(f"consentgate: {rows} rows in {secs:.1f}s = {rows/secs:,.0f} rows/s, {text_mb/secs:.1f} MB/s of text, peak RSS {rss_kb/1024:.0f} MiB, cores used {cores:.2f} (CPU/wall), kept {kept}")
print(f"duckdb:      {rows} rows in {peer:.1f}s = {rows/peer:,.0f} rows/s, kept {peer_rows} (simpler rules, regex redaction)")
print(f"ratio consentgate/duckdb time: {secs/peer:.2f} (goal <= 0.33)")
PY
