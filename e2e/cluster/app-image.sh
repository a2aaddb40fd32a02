#!/usr/bin/env bash
# Builds a Python application's image from its directory the way its Containerfile says, with no
# registry and no network inside the build: the Containerfile's base (python:3.11-slim) is
# replaced by the node's own Python image (e2e/cluster/images.sh: Debian's python3 3.11), its
# `RUN pip install --target /app/site-packages -r requirements.txt` runs here with the host's
# pip for that image's Python and platform, and its `COPY *.py /app/`, `ENV`, `USER` and
# `ENTRYPOINT` lines are applied as written. The OCI archive is cached under
# ${CICLO_CACHE_DIR:-~/.cache/ciclo}/app-images, keyed by the directory's files and the base.
#
#   e2e/cluster/app-image.sh APP_DIR NAME:TAG     prints the archive's path
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
app=$(cd "${1:?usage: app-image.sh APP_DIR NAME:TAG}" && pwd)
name=${2:?usage: app-image.sh APP_DIR NAME:TAG}
log() { echo "${0##*/}: $*" >&2; }

containerfile=$app/Containerfile
for f in "$containerfile" "$app/requirements.txt"; do
  [ -f "$f" ] || { log "$f is missing"; exit 1; }
done
# What this script applies of the Containerfile; anything else would be silently dropped.
unknown=$(grep -vE '^\s*(#|$|FROM |COPY requirements.txt |RUN pip install |COPY \*\.py /app/|ENV |USER 65532:65532$|ENTRYPOINT \[)' "$containerfile" || true)
if [ -n "$unknown" ]; then
  log "$containerfile has instructions this build does not apply:"; echo "$unknown" >&2; exit 1
fi

base=$("$here/images.sh" | awk '$2 ~ /\/python:/ {print $1}')
[ -f "$base" ] || { log "no Python base image from images.sh"; exit 1; }
cache_root=${CICLO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ciclo}
key=$( (cat "$here/app-image.sh"; echo "$name $base"; cd "$app" && find . -type f ! -name '*.pyc' | sort | xargs sha256sum) | sha256sum | cut -c1-16)
out=$cache_root/app-images/$key
archive=$out/$(basename "$name" | tr : _).oci.tar
if [ -f "$archive" ]; then echo "$archive"; exit 0; fi
mkdir -p "$out"
work=$(mktemp -d "$out/tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The base's Python and platform (Debian bookworm: glibc 2.36), as the Containerfile's pip
# would see them; pip 23 takes each manylinux tag given and no older ones by itself.
python_version=$(basename "$base" .oci.tar); python_version=${python_version#python_}
log "pip install of $app/requirements.txt for Python $python_version (manylinux x86_64), once"
mkdir -p "$work/app"
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  --no-warn-conflicts --no-compile --only-binary=:all: \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --implementation cp --python-version "$python_version" \
  --target "$work/app/site-packages" -r "$app/requirements.txt" >&2
cp "$app"/*.py "$work/app/"
chmod -R a+rX "$work/app"

bah=(buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs)
ctr=$("${bah[@]}" from --quiet "oci-archive:$base")
"${bah[@]}" copy --quiet --chown 0:0 "$ctr" "$work/app" /app
config=(--user 65532:65532)
# ENV KEY=VALUE KEY=VALUE …, each line as written (values without spaces).
while read -r line; do
  for kv in ${line#ENV }; do config+=(--env "$kv"); done
done < <(grep -E '^ENV ' "$containerfile")
entrypoint=$(grep -E '^ENTRYPOINT \[' "$containerfile" | tail -1); entrypoint=${entrypoint#ENTRYPOINT }
python3 -c 'import json, sys; json.loads(sys.argv[1])' "$entrypoint" \
  || { log "ENTRYPOINT must be a JSON array: $entrypoint"; exit 1; }
config+=(--entrypoint "$entrypoint" --cmd '[]')
"${bah[@]}" config "${config[@]}" "$ctr"
"${bah[@]}" commit --quiet --timestamp 0 "$ctr" "$name" >/dev/null
"${bah[@]}" push --quiet "$name" "oci-archive:$archive.tmp:$name"
mv "$archive.tmp" "$archive"
"${bah[@]}" rm --all >/dev/null 2>&1 || true
# Keep the four newest builds.
# shellcheck disable=SC2012 # the names are 16 hex digits
ls -1dt "$cache_root"/app-images/????????????????/ | tail -n +5 | xargs -r rm -rf
echo "$archive"
