#!/usr/bin/env bash
# Incremental rebuild versus a full build after 0.1% of members withdraw.
#
#   benchmarks/rebuild.sh [CONTENT_ROWS] [SHARDS]   # defaults 1000000 and 16; members = rows / 10
#
# Generates a corpus, loads the consent events into an embedded ledger, builds as of T1, records
# withdrawals for 0.1% of the members who have content in the dataset (between T1 and T2), then
# times `rebuild --as-of T2` and a full `build --as-of T2` and checks they agree (decisions and
# every shard byte-identical). With S shards and W withdrawals about 1-(1-1/S)^W of the shards
# are rewritten: the saving grows with the shard count.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-1000000}"
SHARDS="${2:-16}"
MEMBERS=$((ROWS / 10))
TARGET="${CARGO_TARGET_DIR:-target}"
WORK="${BENCH_DIR:-/tmp/consentgate-rebuild-$ROWS-$SHARDS}"
T1=2027-01-01
T2=2027-01-02

cargo build --release -q -p consentgate
BIN="$TARGET/release/consentgate"
rm -rf "$WORK" && mkdir -p "$WORK"
export CG_DATA_DIR="$WORK/data"
STORE="sqlite:$WORK/ledger.sqlite"
echo "== generating $MEMBERS members, $ROWS content rows; loading the ledger"
"$BIN" generate --members "$MEMBERS" --content "$ROWS" --out "$WORK/corpus" -q
"$BIN" consent import "$WORK/corpus/consent.parquet" --store "$STORE" -q > /dev/null
C="$WORK/corpus"
INPUTS=(--members "$C/members.parquet" --content "$C/content.parquet" --store "$STORE"
  --residences "$C/residences.parquet" --notices "$C/notices.parquet" --erasures "$C/erasures.parquet")

echo "== build as of $T1 ($SHARDS shards)"
"$BIN" build -q --json "${INPUTS[@]}" --as-of "$T1" --out "$WORK/t1" --shards "$SHARDS" > "$WORK/t1.json"
PARENT="$WORK/t1/$(python3 -c "import json;print(json.load(open('$WORK/t1.json'))['dataset_id'])")"

echo "== 0.1% of members withdraw"
mkdir -p "$WORK/withdrawals"
python3 - "$PARENT/decisions.parquet" "$MEMBERS" "$WORK/withdrawals/consent.csv" <<'PY' || exit 1
import sys, random, subprocess
path, members, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
random.seed(7)
n = max(1, members // 1000)
ids = random.sample(range(1, members + 1), n)
with open(out, "w") as f:
    f.write("member_id,purpose,granted,ts,source\n")
    for m in ids:
        f.write(f"{m},genai_training,false,2027-01-01T12:00:00.000000Z,objection_form\n")
print(f"{n} withdrawals", file=sys.stderr)
PY
"$BIN" consent import "$WORK/withdrawals/consent.csv" --store "$STORE" -q > /dev/null

echo "== rebuild as of $T2"
/usr/bin/time -f "%e %M" -o "$WORK/rebuild.time" "$BIN" rebuild -q --json --dataset "$PARENT" "${INPUTS[@]}" \
  --as-of "$T2" --out "$WORK/t2-rebuild" > "$WORK/rebuild.json"
echo "== full build as of $T2"
/usr/bin/time -f "%e %M" -o "$WORK/full.time" "$BIN" build -q --json "${INPUTS[@]}" \
  --as-of "$T2" --out "$WORK/t2-full" --shards "$SHARDS" > "$WORK/full.json"

python3 - "$WORK" "$ROWS" "$SHARDS" <<'PY'
import json, sys, hashlib, pathlib
work, rows, shards = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
r, f = json.load(open(work / "rebuild.json")), json.load(open(work / "full.json"))
rs, rm = open(work / "rebuild.time").read().split()
fs, fm = open(work / "full.time").read().split()
same = [a["sha256"] for a in r["shards"]] == [b["sha256"] for b in f["shards"]] and r["decisions"]["sha256"] == f["decisions"]["sha256"]
l = r["lineage"]
print(f"rows {rows}, shards {shards}: rebuild {float(rs):.1f}s ({int(rm)//1024} MiB), full build {float(fs):.1f}s ({int(fm)//1024} MiB), ratio {float(rs)/float(fs):.2f}")
print(f"  shards rewritten {l['shards_rewritten']}, changed {len(l['changed_shards'])} of {shards}; members +{l['members_added']} -{l['members_removed']}; identical to the full build: {same}")
if not same:
    sys.exit("the rebuild differs from the full build")
PY
