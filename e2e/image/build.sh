#!/usr/bin/env bash
# Builds the ciclo container image without a Docker engine, with buildah, into an OCI archive
# in a cache folder outside the repository, keyed by everything that decides its content.
# The binary comes from e2e/image/rootfs.sh (the script the Dockerfile's build stage runs);
# the image itself from operator/Dockerfile's final stage, unchanged: buildah is given that
# root filesystem as the `build` stage (--build-context), so no base image is pulled.
#
#   e2e/image/build.sh              build if needed; print the digest, size and archive
#   e2e/image/build.sh --archive    print the archive's path only (may not exist yet)
#   CICLO_IMAGE_PROFILE=dev e2e/image/build.sh   an unoptimised binary (CI from nothing)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache_root=${CICLO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ciclo}

# The project installs what it uses: buildah; for test.sh runc (crun, buildah's default,
# refuses this machine's hybrid cgroup layout) and file.
if ! command -v buildah >/dev/null || ! command -v runc >/dev/null || ! command -v file >/dev/null; then
  echo "build.sh: installing buildah, runc and file (Debian packages)" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah runc file >&2
fi

# What ships is built with the `image` profile; CICLO_IMAGE_PROFILE=dev trades that for time.
profile=${CICLO_IMAGE_PROFILE:-image}
version=$(awk -F'"' '/^\[workspace.package\]/ {p = 1} p && $1 ~ /^version *= */ {print $2; exit}' \
  "$repo/Cargo.toml")
revision=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)
if [ "$revision" != unknown ] && [ -n "$(git -C "$repo" status --porcelain -- operator Cargo.toml Cargo.lock e2e/image e2e/onnxruntime)" ]; then
  revision+="-dirty"
fi
# The commit's time as the image's creation time, so that the same inputs give the same digest.
created=$(git -C "$repo" log -1 --format=%ct 2>/dev/null || echo 0)

key=$( (cd "$repo" && find operator e2e/image e2e/onnxruntime Cargo.toml Cargo.lock -type f -print0 \
          | LC_ALL=C sort -z | xargs -0 sha256sum
        rustc -vV; buildah --version; echo "$version $revision $created $profile") \
      | sha256sum | cut -c1-16)
out="$cache_root/image/$key"
archive="$out/ciclo.oci.tar"

if [ "${1:-}" = "--archive" ]; then echo "$archive"; exit 0; fi

report() {
  echo "image:    ghcr.io/ciclo-dev/ciclo:$version (revision $revision, cargo profile $profile)"
  echo "digest:   $(cat "$out/digest")"
  echo "size:     $(cat "$out/size")"
  echo "archive:  $archive"
}
if [ -f "$out/complete" ]; then report; exit 0; fi

rm -rf "$out" && mkdir -p "$out"
work=$(mktemp -d "$cache_root/image/tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT

start=$(date +%s)
# One target directory for every key: a source change recompiles the ciclo crates only.
echo "build.sh: building the static ciclo binary (cargo --profile $profile)" >&2
# No incremental state: it would double the folder, and a change recompiles only ciclo's
# crates anyway.
CARGO_INCREMENTAL=0 CARGO_TARGET_DIR="$cache_root/image/target" "$here/rootfs.sh" "$work/stage/rootfs" >&2
built=$(date +%s)

# buildah's own store lives in the temporary folder: the archive is the only output.
bah=(buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs)
mkdir -p "$work/empty"
echo "build.sh: building operator/Dockerfile's final stage with buildah" >&2
"${bah[@]}" bud --quiet --file "$repo/operator/Dockerfile" --target image \
  --build-context build="$work/stage" --build-arg VERSION="$version" \
  --build-arg REVISION="$revision" --timestamp "$created" --identity-label=false \
  --tag "localhost/ciclo:$version" "$work/empty" >/dev/null
"${bah[@]}" push --quiet --digestfile "$out/digest" "localhost/ciclo:$version" \
  "oci-archive:$archive:ghcr.io/ciclo-dev/ciclo:$version"

unpacked=$(du -sb "$work/stage/rootfs" | cut -f1)
packed=$(stat -c %s "$archive")
echo "$((unpacked / 1048576)) MiB unpacked, $((packed / 1048576)) MiB as an OCI archive (one gzip layer)" > "$out/size"
echo "build.sh: binary in $((built - start)) s, image in $(($(date +%s) - built)) s" >&2
touch "$out/complete"
# Keep the three newest images (one per commit adds up); the target directory stays.
# shellcheck disable=SC2012 # the names are 16 hex digits
ls -1dt "$cache_root"/image/????????????????/ | tail -n +4 | xargs -r rm -rf
report
