#!/usr/bin/env bash
# The previous release, for the upgrade test (e2e/tests/tests/upgrade.rs): ciclo as it was at
# the commit e2e/upgrade/previous-commit names — its chart, its CRDs, its e2e values and its
# operator image, built by that commit's own e2e/image/build.sh (dev profile) — kept in a
# cache folder outside the repository keyed by that commit. The commit must be in the clone's
# history (CI clones all of it).
#
#   e2e/upgrade/previous.sh          extract and build if needed; print the source folder
#   e2e/upgrade/previous.sh --dir    print the source folder only (may not be built yet)
#
# The source folder holds charts/ciclo, crds/ and e2e/deploy/values*.yaml as they were, and
# image.archive: the path of the built OCI archive.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache_root=${CICLO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ciclo}
commit=$(tr -d '[:space:]' <"$here/previous-commit")
out=$cache_root/previous/$commit
src=$out/src

if [ "${1:-}" = "--dir" ]; then echo "$src"; exit 0; fi
if [ -f "$out/complete" ]; then echo "$src"; exit 0; fi

git -C "$repo" cat-file -e "$commit^{commit}" 2>/dev/null || {
  echo "previous.sh: commit $commit is not in this clone's history (fetch it, or clone without --depth)" >&2
  exit 1
}
echo "previous.sh: building ciclo as of $commit (its chart and a dev-profile image; first time only)" >&2
start=$(date +%s)
rm -rf "$out" && mkdir -p "$src"
git -C "$repo" archive "$commit" | tar -x -C "$src"
# Its own cache root: the previous source in the current image's target folder would make
# each build recompile the other's crates.
archive=$(cd "$src" && CICLO_CACHE_DIR="$cache_root/previous/build" CICLO_IMAGE_PROFILE=dev \
  e2e/image/build.sh | sed -n 's/^archive: *//p')
[ -f "$archive" ] || { echo "previous.sh: no image archive from $commit's build" >&2; exit 1; }
echo "$archive" >"$src/image.archive"
# Only the archive is used; the build's target folder (2.4 GB) is not needed again unless
# the commit changes, and then it is built from nothing anyway.
rm -rf "$cache_root/previous/build/image/target"
touch "$out/complete"
echo "previous.sh: built in $(( $(date +%s) - start )) s" >&2
echo "$src"
