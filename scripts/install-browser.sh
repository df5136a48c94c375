#!/usr/bin/env bash
# Installs what the browser tests need — Debian's chromium and chromium-driver — when missing,
# and checks that headless Chromium runs. Used by .ci/run and by the browser test itself, so
# `cargo nextest run --workspace` works on a fresh machine. Exits non-zero if Chromium cannot run.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "installing Debian's chromium and chromium-driver for the browser tests" >&2
  SUDO=""
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=sudo; fi
  $SUDO apt-get update -q >&2 || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium chromium-driver >&2
fi
if ! chromium --headless=new --no-sandbox --disable-gpu --disable-background-networking \
  --disable-component-update --disable-sync --no-first-run --dump-dom about:blank >/dev/null 2>&1; then
  echo "error: headless Chromium does not run; the browser tests need it" >&2
  exit 1
fi
