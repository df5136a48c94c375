#!/usr/bin/env bash
# Embedded DataFusion versus a Ballista scheduler and two executors on this machine, on the same
# corpus, and a check that both published the same dataset.
#
#   benchmarks/distributed.sh [CONTENT_ROWS] [SHARDS] [MEMBERS]   # defaults 10000000, 16, rows / 10
#   BUILD_ARGS="--memory-mb 512" benchmarks/distributed.sh ...     # extra flags for both builds
#   EXECUTOR_ARGS="--memory-mb 512" benchmarks/distributed.sh ...  # extra flags for the executors
#   ENGINE_QUERY="?shuffle-mb=64" benchmarks/distributed.sh ...     # engine URL parameters
#   CG_BIN=/path/to/consentgate benchmarks/distributed.sh ...      # a prebuilt binary
#   EXECUTOR_KEY=none benchmarks/distributed.sh ...                 # executors without the member
#                                                                  # key: the client derives them
#   OUT=s3 benchmarks/distributed.sh ...                           # both builds publish to moto's
#                                                                  # S3 server on loopback; prints
#                                                                  # what went through each client
#   CONSENT=store benchmarks/distributed.sh ...                    # every member-side table in a
#                                                                  # SQLite ledger (imported once,
#                                                                  # kept in $WORK), built with
#                                                                  # --store and no member files
#
# Starts `consentgate scheduler` and two `consentgate executor`s on loopback (two task slots
# each), builds with `--engine datafusion` and with `--engine ballista://…`, prints both times and
# their ratio, and compares every file of the two datasets (the manifests apart from
# `created_at` and `engine`). Also printed: the bytes the client received from the cluster (its
# own counter, the `Received` line of the build) and the executors' peak RSS, the figures that
# must not grow with rows (client) or must grow with members / executors (executors). On
# a 2-core machine the cluster cannot be faster; the point is equal output and the cost of
# distribution.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-10000000}"
SHARDS="${2:-16}"
MEMBERS="${3:-$((ROWS / 10))}"
TARGET="${CARGO_TARGET_DIR:-target}"
WORK="${BENCH_DIR:-/tmp/consentgate-distributed-$ROWS-$MEMBERS}"
AS_OF=2025-12-01
PORT="${BENCH_PORT:-50150}"

# CG_BIN=path measures a binary built otherwise (other features, another commit) instead.
if [ -n "${CG_BIN:-}" ]; then
  BIN="$CG_BIN"
else
  cargo build --release -q -p consentgate
  BIN="$TARGET/release/consentgate"
fi
mkdir -p "$WORK"
export CG_DATA_DIR="$WORK/data"
C="$WORK/corpus"
if [ ! -f "$C/content.parquet" ]; then
  echo "== generating $MEMBERS members, $ROWS content rows"
  "$BIN" generate --members "$MEMBERS" --content "$ROWS" --out "$C" -q
fi
rm -rf "$WORK/embedded" "$WORK/ballista" "$WORK/executors" "$WORK/member.key" "$WORK/staging"
if [ "${CONSENT:-files}" = store ]; then
  LEDGER="$WORK/ledger.sqlite"
  if [ ! -f "$LEDGER.done" ]; then
    echo "== importing the member-side tables into $LEDGER"
    rm -f "$LEDGER"*
    "$BIN" consent import "$C/members.parquet" "$C/consent.parquet" "$C/residences.parquet" \
      "$C/notices.parquet" "$C/erasures.parquet" --store "sqlite:$LEDGER" -q
    touch "$LEDGER.done"
  fi
  INPUTS=(--store "sqlite:$LEDGER" --content "$C/content.parquet"
    --as-of "$AS_OF" --shards "$SHARDS" --json -q ${BUILD_ARGS:-})
else
  INPUTS=(--members "$C/members.parquet" --content "$C/content.parquet" --consent "$C/consent.parquet"
    --residences "$C/residences.parquet" --notices "$C/notices.parquet" --erasures "$C/erasures.parquet"
    --as-of "$AS_OF" --shards "$SHARDS" --json -q ${BUILD_ARGS:-})
fi

PIDS=()
MOTO_PID=
cleanup() {
  for p in "${PIDS[@]}" $MOTO_PID; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# OUT=s3: both builds publish to a bucket on moto's S3 server (loopback), staging in $WORK; the
# executors inherit the store's environment (their own credentials, as on a real cluster).
OUT_EMBEDDED="$WORK/embedded"
OUT_BALLISTA="$WORK/ballista"
STAGING=()
if [ "${OUT:-local}" = s3 ]; then
  PY=$(scripts/python-venv.sh moto)
  S3_PORT=$((PORT + 40))
  "$(dirname "$PY")/moto_server" -H 127.0.0.1 -p "$S3_PORT" > "$WORK/moto.log" 2>&1 &
  MOTO_PID=$!
  export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 \
    AWS_ENDPOINT_URL="http://127.0.0.1:$S3_PORT" AWS_ALLOW_HTTP=true
  for _ in $(seq 1 100); do
    "$PY" -c "import boto3; boto3.client('s3').create_bucket(Bucket='bench')" 2>/dev/null && break
    sleep 0.2
  done
  mkdir -p "$WORK/staging"
  OUT_EMBEDDED=s3://bench/embedded
  OUT_BALLISTA=s3://bench/ballista
  STAGING=(--staging "$WORK/staging")
fi

echo "== embedded build"
LOUD=()
for a in "${INPUTS[@]}"; do [ "$a" = -q ] || LOUD+=("$a"); done
/usr/bin/time -f "%e %M" -o "$WORK/embedded.time" "$BIN" build "${LOUD[@]}" --out "$OUT_EMBEDDED" "${STAGING[@]}" \
  > "$WORK/embedded.json" 2> "$WORK/embedded.err"

# The embedded build made the log key; the executors get its member key alone (unless
# EXECUTOR_KEY=none), so they derive the member keys of the shards they write.
KEY_ARGS=()
if [ "${EXECUTOR_KEY:-builds}" != none ]; then
  "$BIN" keys export-member-key -q --out "$WORK/member.key" > /dev/null
  KEY_ARGS=(--member-key "$WORK/member.key")
fi

echo "== scheduler and two executors on 127.0.0.1:$PORT"
"$BIN" scheduler -q --round-robin --bind "127.0.0.1:$PORT" 2> "$WORK/scheduler.log" & PIDS+=($!)
sleep 1
for i in 1 2; do
  "$BIN" executor -q --scheduler "127.0.0.1:$PORT" --bind "127.0.0.1:$((PORT + 2 * i))" \
    --grpc-port "$((PORT + 2 * i + 1))" --concurrency 2 --work-dir "$WORK/executors/$i" "${KEY_ARGS[@]}" ${EXECUTOR_ARGS:-} \
    2> "$WORK/executor-$i.log" & PIDS+=($!)
done
sleep 2

echo "== distributed build"
# Not quiet: the build's `Received` line is the client's count of what came from the cluster,
# its `Uploaded` line (OUT=s3) what it put on the store and what it copied there.
/usr/bin/time -f "%e %M %U %S" -o "$WORK/ballista.time" "$BIN" build "${LOUD[@]}" --out "$OUT_BALLISTA" \
  "${STAGING[@]}" --engine "ballista://127.0.0.1:$PORT${ENGINE_QUERY:-}" > "$WORK/ballista.json" 2> "$WORK/ballista.err"
RECEIVED=$(grep -o 'Received *[0-9]* bytes' "$WORK/ballista.err" | grep -o '[0-9]*' || echo 0)
KEYS_REMOTE=$(grep -o '[0-9]* member keys derived by the executors' "$WORK/ballista.err" | grep -o '^[0-9]*' || echo 0)
# Peak RSS of the executors, from /proc while they are still up.
# Each executor's peak (KiB, comma-separated).
EXEC_RSS=$(for p in "${PIDS[@]:1}"; do awk '/VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0; done | paste -sd, -)

if [ "${OUT:-local}" = s3 ]; then
  # Both datasets from the store into $WORK, for the comparison below; and what stayed there
  # besides them (the attempts' prefix must be gone).
  "$PY" - "$WORK" <<'PY'
import json, os, sys, boto3
work = sys.argv[1]
s3 = boto3.client("s3")
keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="bench")
        for o in page.get("Contents", [])]
for name in ("embedded", "ballista"):
    ds = json.load(open(f"{work}/{name}.json"))["dataset_id"]
    for k in keys:
        if k.startswith(f"{name}/{ds}/"):
            dest = os.path.join(work, k)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            s3.download_file("bench", k, dest)
stray = [k for k in keys if k.split("/")[1].startswith(".")]
print(f"objects on the store besides the two datasets: {len(stray)}")
PY
  for name in embedded ballista; do
    echo "$name client: $(grep -o 'Uploaded .*' "$WORK/$name.err" || echo 'no Uploaded line')"
  done
fi

python3 - "$WORK" "$ROWS" "$EXEC_RSS" "$RECEIVED" "$MEMBERS" "$SHARDS" "$KEYS_REMOTE" <<'PY'
import hashlib, json, os, re, sys
work, rows = sys.argv[1], int(sys.argv[2])
def facts_held(i):
    """Shards and members whose facts executor i compiled (its log's `compiled the member facts` lines)."""
    shards, members = 0, 0
    for line in open(f"{work}/executor-{i}.log", errors="replace"):
        m = re.search(r"compiled the member facts of shard \d+: (\d+) members", line)
        if m:
            shards, members = shards + 1, members + int(m.group(1))
    return shards, members
each_rss = [int(k) for k in (sys.argv[3] or "0").split(",") if k]
exec_rss = sum(each_rss)
received, members = int(sys.argv[4] or 0), int(sys.argv[5])
def times(name):
    secs, kib = open(f"{work}/{name}.time").read().split()[:2]
    return float(secs), int(kib) // 1024
def client_cpu():
    return sum(float(x) for x in open(f"{work}/ballista.time").read().split()[2:4])
def dataset(name):
    m = json.load(open(f"{work}/{name}.json"))
    d = os.path.join(work, name, m["dataset_id"])
    files = {}
    for root, _, names in os.walk(d):
        for n in names:
            p = os.path.join(root, n)
            if n != "manifest.json":
                files[os.path.relpath(p, d)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    for k in ("created_at", "engine"):
        m.pop(k)
    # With the ledger, the first build's log entry moved the ledger's checkpoint for the second.
    if os.environ.get("CONSENT") == "store":
        m.pop("ledger_checkpoint", None)
    return m, files
(e_s, e_mb), (b_s, b_mb) = times("embedded"), times("ballista")
em, ef = dataset("embedded")
bm, bf = dataset("ballista")
same = em == bm and ef == bf
print(f"rows {rows}: embedded {e_s:.1f} s ({rows / e_s / 1000:.0f} k rows/s, peak RSS {e_mb} MiB); "
      f"scheduler + 2 executors {b_s:.1f} s ({rows / b_s / 1000:.0f} k rows/s, client peak RSS {b_mb} MiB, "
      f"executors {exec_rss // 1024} MiB together)")
print(f"ratio distributed/embedded: {b_s / e_s:.2f}; the client used {client_cpu():.1f} CPU-s")
print(f"members {members}: client received {received / 2**20:.1f} MiB from the cluster "
      f"({received / rows:.0f} bytes per content row); executors' peak RSS {exec_rss // 1024} MiB "
      f"("
      f"{exec_rss * 1024 / max(members, 1) / 1e3:.1f} kB per member together; each: "
      f"{', '.join(f'{k // 1024} MiB' for k in each_rss)})")
shards = int(sys.argv[6])
print(f"client received {received} bytes for {shards} shards: "
      f"{received / shards * 1000 / 2**20:.3f} MiB per 1 000 shards (goal: at most 1)")
held = [facts_held(i) for i in (1, 2)]
commitment = em['member_commitment']
if commitment.get('roster_members'):
    print(f"member commitment: a roster of {commitment['roster_members']} members "
          f"({commitment['members']} in the dataset), made by the client from the decision record")
else:
    print(f"member keys derived by the executors: {int(sys.argv[7] or 0)} "
          f"of {commitment['members']} in the commitment")
print("member facts compiled per executor: " + ", ".join(f"{m} members in {s} shards" for s, m in held))
print(f"identical datasets ({len(ef)} files, manifests equal but for created_at and engine): {same}")
sys.exit(0 if same else 1)
PY
