#!/usr/bin/env bash
# Prints the path of ONNX Runtime's shared library, libonnxruntime.so.1, taken from the
# onnxruntime wheel on PyPI (the registry package that ships it; the machine can reach no
# other download) once per version and architecture, into
# ${CICLO_CACHE_DIR:-$HOME/.cache/ciclo}/onnxruntime/<version>-<arch>. `ciclo serve` loads it
# at run time for ONNX models (the `ort` crate's load-dynamic); the image carries it, and
# `make build` puts it beside target/debug/ciclo. The library's SHA-256 is pinned below.
set -euo pipefail
version=1.32.0
arch=$(uname -m)
case "$arch" in
x86_64) sha256=6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f ;;
*)
    echo "fetch.sh: no pinned onnxruntime $version library for $arch" >&2
    exit 1
    ;;
esac
python=${PYTHON:-python3}
dir=${CICLO_CACHE_DIR:-$HOME/.cache/ciclo}/onnxruntime/$version-$arch
lib=$dir/libonnxruntime.so.1
mkdir -p "$dir"
exec 9>"$dir.lock"
flock 9
if [[ ! -f "$lib" ]]; then
    echo "fetch.sh: onnxruntime $version from PyPI into $dir" >&2
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    # Any CPython wheel of the version holds the same library: ask for one by platform, so
    # the host's Python version does not matter.
    "$python" -m pip download --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: --implementation cp --python-version 3.11 \
        --platform "manylinux_2_28_$arch" "onnxruntime==$version" -d "$tmp" >&2
    "$python" - "$tmp" "$tmp/lib" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/onnxruntime-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    [name] = [n for n in z.namelist() if n.startswith("onnxruntime/capi/libonnxruntime.so.")]
    open(sys.argv[2], "wb").write(z.read(name))
PY
    echo "$sha256  $tmp/lib" | sha256sum --check --quiet >&2
    chmod 0644 "$tmp/lib"
    mv "$tmp/lib" "$lib"
fi
echo "$lib"
