#!/usr/bin/env bash
# Fuzzes every parser that takes outside input, each for a bounded time, with libFuzzer through
# cargo-fuzz (nightly toolchain; installed on first use). Seeds and the corpus found so far live
# in fuzz/corpus/<target> (new inputs are merged back there); a crash stops the script with the
# input saved under fuzz/artifacts/<target>.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      # default 600 s per target, every target
#
# Prints the executions and the corpus size of each target. Built without a sanitizer (the code
# under test is safe Rust: what is sought is a panic, an abort, a hang or runaway memory), which
# keeps the build of the Arrow readers affordable.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-600}"
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  TARGETS=(signed_note receipt log_proof commitment token table_csv table_jsonl)
fi
if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo +nightly install cargo-fuzz --locked
fi
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-/var/tmp/consentgate-fuzz-target}"
cd fuzz
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  work=$(mktemp -d)
  cargo +nightly fuzz run "$t" --release --debug-assertions --sanitizer none "$work" "corpus/$t" -- \
    -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" > "$work.log" 2>&1 || { tail -40 "$work.log"; echo "fuzz target $t FAILED" >&2; exit 1; }
  runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$work.log" | grep -Eo '[0-9]+$' || echo '?')
  # Keep what was found, minimised into the committed corpus.
  cp -n "$work"/* "corpus/$t/" 2>/dev/null || true
  cargo +nightly fuzz cmin --sanitizer none "$t" "corpus/$t" > /dev/null 2>&1 || true
  printf '%-12s %6ss  %12s executions  %5s corpus files  no crash\n' "$t" "$SECS" "$runs" "$(ls "corpus/$t" | wc -l)"
  rm -rf "$work" "$work.log"
done
