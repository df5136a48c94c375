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
# equivalent SQL (join, as-of residence and consent, filters, regexp_replace redaction, Parquet
# write) and the ratio, and how far the two tools' kept rows agree (content ids kept by both,
# by consentgate only, by DuckDB only): a peer that keeps other rows does other work. DuckDB
# (a pinned version, for figures that compare across runs) is installed from PyPI into
# benchmarks/.venv on first use.
#
# AS_OF=YYYY-MM-DD (2025-12-01 by default) picks the cut-off, hence the regime in force.
#
# ROUNDS=N (3 by default) runs both tools N times, taking turns to go first, after flushing
# the corpus to disk; times are medians (CPU/wall: the median CPU over the median wall; peak
# RSS: the largest), each round's pair is printed too.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-1000000}"
MEMBERS="${2:-$((ROWS / 10))}"
TARGET="${CARGO_TARGET_DIR:-target}"
WORK="${BENCH_DIR:-/tmp/consentgate-bench-$ROWS-$MEMBERS}"
AS_OF="${AS_OF:-2025-12-01}"

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

DUCKDB_VERSION=2.0.1
if [ ! -x benchmarks/.venv/bin/python ]; then
  python3 -m venv benchmarks/.venv
fi
if ! benchmarks/.venv/bin/python -c "import duckdb, sys; sys.exit(duckdb.__version__ != '$DUCKDB_VERSION')" 2>/dev/null; then
  benchmarks/.venv/bin/pip install -q "duckdb==$DUCKDB_VERSION"
fi

# The corpus was just written: flush it before anything is timed, so that neither tool runs
# while the kernel writes it back. Each tool's output is flushed after its run too
# (the last round's outputs stay in WORK).
sync
ROUNDS="${ROUNDS:-3}"

cg_build() {
  rm -rf "$WORK/out"
  /usr/bin/time -f "%e %M %U %S" -o "$WORK/time-$1.txt" "$BIN" build -q --json \
    --members "$WORK/corpus/members.parquet" --content "$WORK/corpus/content.parquet" \
    --consent "$WORK/corpus/consent.parquet" --residences "$WORK/corpus/residences.parquet" \
    --notices "$WORK/corpus/notices.parquet" --erasures "$WORK/corpus/erasures.parquet" \
    --as-of "$AS_OF" --out "$WORK/out" --shards 16 ${BUILD_ARGS:-} > "$WORK/manifest.json"
  sync
}

duckdb_peer() {
  rm -f "$WORK/duckdb.parquet"
  benchmarks/.venv/bin/python benchmarks/duckdb_peer.py "$WORK/corpus" "$AS_OF" "$WORK/duckdb.parquet" \
    > "$WORK/peer-$1.txt"
  sync
}

# ROUNDS rounds, the two tools taking turns to go first (a round's first run meets a machine
# the other tool has just left; alternating keeps that from favouring either).
for ((r = 1; r <= ROUNDS; r++)); do
  if ((r % 2)); then
    echo "== round $r/$ROUNDS: consentgate build, then duckdb (2 threads), equivalent SQL"
    cg_build "$r"; duckdb_peer "$r"
  else
    echo "== round $r/$ROUNDS: duckdb (2 threads), equivalent SQL, then consentgate build"
    duckdb_peer "$r"; cg_build "$r"
  fi
done

python3 - "$ROWS" "$WORK" "$ROUNDS" <<'PY'
import json, statistics, sys
rows, work, rounds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
cg, peer = [], []
for r in range(1, rounds + 1):
    secs, rss_kb, user_s, sys_s = open(f"{work}/time-{r}.txt").read().split()[-4:]
    cg.append((float(secs), int(rss_kb), float(user_s) + float(sys_s)))
    p_secs, text_mb, p_rows = open(f"{work}/peer-{r}.txt").read().split()
    peer.append((float(p_secs), float(text_mb), int(p_rows)))
m = json.load(open(f"{work}/manifest.json"))
kept = m["totals"].get("include", 0) + m["totals"].get("include_redacted", 0)
secs = statistics.median(c[0] for c in cg)
cpu = statistics.median(c[2] for c in cg)
rss_kb = max(c[1] for c in cg)
p = statistics.median(x[0] for x in peer)
text_mb, p_rows = peer[0][1], peer[0][2]
for r in range(rounds):
    print(f"round {r + 1}: consentgate {cg[r][0]:.2f}s ({cg[r][2] / cg[r][0]:.2f} cores, {cg[r][1] / 1024:.0f} MiB), duckdb {peer[r][0]:.2f}s, ratio {cg[r][0] / peer[r][0]:.2f}")
print(f"consentgate: {rows} rows in {secs:.1f}s = {rows/secs:,.0f} rows/s, {text_mb/secs:.1f} MB/s of text, peak RSS {rss_kb/1024:.0f} MiB, cores used {cpu/secs:.2f} (CPU/wall), kept {kept}")
print(f"duckdb:      {rows} rows in {p:.1f}s = {rows/p:,.0f} rows/s, kept {p_rows} (regex redaction, no mention scrubbing)")
print(f"ratio consentgate/duckdb time: {secs/p:.2f} (medians of {rounds} rounds; goal <= 0.33)")
PY

# Agreement of the last round's outputs: the same gate should keep the same content ids.
benchmarks/.venv/bin/python - "$WORK" <<'PY'
import glob, sys
import duckdb
work = sys.argv[1]
decisions = glob.glob(f"{work}/out/*/decisions.parquet")
if len(decisions) != 1:
    sys.exit(f"expected one dataset under {work}/out, found {decisions}")
both, cg_only, peer_only = duckdb.sql(f"""
  WITH cg AS (SELECT content_id FROM read_parquet('{decisions[0]}')
              WHERE decision IN ('include', 'include_redacted')),
       peer AS (SELECT content_id FROM read_parquet('{work}/duckdb.parquet'))
  SELECT count(*) FILTER (WHERE cg.content_id IS NOT NULL AND peer.content_id IS NOT NULL),
         count(*) FILTER (WHERE peer.content_id IS NULL),
         count(*) FILTER (WHERE cg.content_id IS NULL)
  FROM cg FULL OUTER JOIN peer USING (content_id)""").fetchall()[0]
print(f"kept rows: {both} by both, {cg_only} by consentgate only, {peer_only} by duckdb only")
if cg_only or peer_only:
    print("warning: the two tools kept different rows, so the ratio compares unequal work "
          "(other BUILD_ARGS, policy config or corpus than benchmarks/duckdb_peer.py assumes?)",
          file=sys.stderr)
PY
