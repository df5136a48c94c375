#!/usr/bin/env bash
# A Python virtual environment with the readers a dataset's consumers use (pyarrow and Hugging
# Face `datasets`), made once and reused: the dataset-card test loads published shards with
# them. Prints the venv's python on stdout. Needs python3 (with venv) and PyPI.
#
#   scripts/python-venv.sh            # make or reuse ${CG_VENV:-/var/tmp/consentgate-venv}
set -euo pipefail

VENV="${CG_VENV:-/var/tmp/consentgate-venv}"
# Pinned so a test run today and next month read shards with the same code.
PACKAGES=(pyarrow==26.0.1 datasets==5.2.0)
STAMP="$VENV/.consentgate-packages"

if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "${PACKAGES[*]}" ]]; then
  echo "$VENV/bin/python"
  exit 0
fi
# Another test may be making it: one maker at a time.
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock -w 600 9
if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "${PACKAGES[*]}" ]]; then
  echo "$VENV/bin/python"
  exit 0
fi
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  echo "python3 with venv and ensurepip is needed: installing Debian's python3-venv" >&2
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get install -y -q python3-venv >&2
fi
rm -rf "$VENV"
python3 -m venv "$VENV" >&2
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PACKAGES[@]}" >&2
echo "${PACKAGES[*]}" >"$STAMP"
echo "$VENV/bin/python"
