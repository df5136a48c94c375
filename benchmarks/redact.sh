#!/usr/bin/env bash
# Whole-process redaction throughput against a named peer on the same text.
#
#   benchmarks/redact.sh [MEGABYTES]      # default 200
#
# Builds a PII-dense file of MEGABYTES from the hand-written hard cases (every line carries
# e-mail, phone, card, IBAN, ... or a distractor), then times `consentgate redact FILE` (every
# core, output in input order) and prints MB/s, CPU-seconds / wall-seconds (cores used) and peak
# RSS; then a Python `re.sub` chain (e-mail, phone, card, IBAN, IP, URL — the hand-written regex
# chain a team would write instead) on the same file, and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
MB="${1:-200}"
TARGET="${CARGO_TARGET_DIR:-target}"
WORK="${BENCH_DIR:-/tmp/consentgate-redact-bench}"
mkdir -p "$WORK"
cargo build --release -q -p consentgate
BIN="$TARGET/release/consentgate"

FILE="$WORK/dense-${MB}mb.txt"
if [ ! -s "$FILE" ]; then
  python3 - "$FILE" "$MB" <<'PY'
import re, sys
path, mb = sys.argv[1], int(sys.argv[2])
lines = []
for line in open("crates/cg-redact/eval/hard_cases.txt", encoding="utf-8"):
    if not line.strip() or line.startswith("#"):
        continue
    text = line.rstrip("\n").split("\t", 1)[1]
    lines.append(re.sub(r"\[\[[A-Z_]+:(.*?)\]\]", r"\1", text))
block = ("\n".join(lines) + "\n").encode()
with open(path, "wb") as f:
    for _ in range(mb * 1_000_000 // len(block) + 1):
        f.write(block)
PY
fi
BYTES=$(stat -c %s "$FILE")

echo "== consentgate redact ($((BYTES / 1000000)) MB, every core)"
/usr/bin/time -f "%e %U %S %M" -o "$WORK/time.txt" "$BIN" redact "$FILE" > "$WORK/out.txt"
read -r SECS USR SYS RSS_KB < "$WORK/time.txt"

echo "== peer: Python re.sub chain, one process"
PEER=$(python3 - "$FILE" <<'PY'
import re, sys, time
chain = [
    (re.compile(r"[\w.%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}"), "<EMAIL>"),
    (re.compile(r"(?:https?://|www\.)[^\s<>\"'()]+"), "<URL>"),
    (re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"), "<IBAN_CODE>"),
    (re.compile(r"\b(?:\d[ -]?){12,18}\d\b"), "<CREDIT_CARD>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"), "<IP_ADDRESS>"),
    (re.compile(r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,5}\)[ .-]?)?\d{2,5}(?:[ .-]?\d{2,5}){1,5}"), "<PHONE>"),
]
start = time.perf_counter()
n = 0
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        for rx, rep in chain:
            line = rx.sub(rep, line)
        n += len(line)
print(time.perf_counter() - start)
PY
)

python3 - "$BYTES" "$SECS" "$USR" "$SYS" "$RSS_KB" "$PEER" <<'PY'
import sys
b, secs, usr, sys_, rss, peer = (float(x) for x in sys.argv[1:])
mbs = b / 1e6 / secs
peer_mbs = b / 1e6 / peer
print(f"consentgate redact: {secs:.2f} s wall, {b/1e6:.0f} MB, {mbs:.0f} MB/s, "
      f"cores used {(usr + sys_) / secs:.2f}, peak RSS {rss/1024:.0f} MiB")
print(f"peer (Python re chain): {peer:.2f} s, {peer_mbs:.1f} MB/s")
print(f"ratio consentgate / peer (time): {secs / peer:.3f}  (speed-up {peer / secs:.1f}x)")
PY
