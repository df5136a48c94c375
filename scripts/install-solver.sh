#!/usr/bin/env bash
# Installs what `consentgate policy prove` needs — the cvc5 SMT solver — when missing, and
# checks that it runs. Used by .ci/run and by the proof tests themselves, so
# `cargo nextest run --workspace` works on a fresh machine. Exits non-zero if cvc5 cannot run.
#
# The version: Debian's `cvc5` package (1.0.3 on bookworm). cedar-policy-symcc's README names
# cvc5 1.3.1, which no registry reachable here ships as a binary (PyPI's `cvc5` is the Python
# bindings only); 1.0.3 decides every query consentgate's proofs send (their tests run on it),
# and a different binary can be given with `--solver PATH` or `$CVC5`.
set -euo pipefail
if ! command -v cvc5 >/dev/null 2>&1; then
  echo "installing Debian's cvc5 for policy proofs" >&2
  SUDO=""
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=sudo; fi
  $SUDO apt-get update -q >&2 || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q cvc5 >&2
fi
if ! printf '(check-sat)\n' | cvc5 --lang smt >/dev/null 2>&1; then
  echo "error: cvc5 does not run; policy proofs need it" >&2
  exit 1
fi
