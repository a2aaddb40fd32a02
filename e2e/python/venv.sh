#!/usr/bin/env bash
# Prints the path of a Python interpreter with e2e/python/requirements.txt installed: a venv
# made once per set of pinned requirements (and Python version) under
# ${CICLO_CACHE_DIR:-$HOME/.cache/ciclo}/python, so the tests that run other people's Python
# clients and tools need nothing installed by hand. PYTHON (python3) makes the venv.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
key=$( { cat "$here/requirements.txt"; "$python" --version; } | sha256sum | cut -c1-16)
venv=${CICLO_CACHE_DIR:-$HOME/.cache/ciclo}/python/$key
mkdir -p "$(dirname "$venv")"
# Tests running at once wait for the one that makes the venv.
exec 9>"$venv.lock"
flock 9
if [[ ! -f "$venv/.complete" ]]; then
    rm -rf "$venv"
    echo "venv.sh: making $venv" >&2
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" >&2
    touch "$venv/.complete"
fi
echo "$venv/bin/python"
