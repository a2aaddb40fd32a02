#!/usr/bin/env bash
# Builds the node's own images from the binaries e2e/cluster/build.sh made, with buildah and no
# registry: the pods' sandbox (pause), the cluster DNS (CoreDNS), and BusyBox for the tests'
# own pods. Each is static programs on an otherwise empty root filesystem, run as uid 65532. The OCI archives land
# beside the binaries (the same cache key), so they are built once per control-plane build.
#
#   e2e/cluster/images.sh      build what is missing; print "<archive> <image name>" per image
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bin=$("$here/build.sh")
cache_root=${CICLO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ciclo}
# Keyed by this script and the binaries' build: either changing makes new archives.
out=$cache_root/node-images/$( (cat "$here/images.sh"; echo "$bin") | sha256sum | cut -c1-16)
mkdir -p "$out"

pause_version=$(cat "$bin/pause.version")
coredns_version=$("$bin/coredns" -version | awk -F- 'NR == 1 {print $2}')

# The project installs what it uses (a fresh machine has no buildah).
if ! command -v buildah >/dev/null; then
  echo "images.sh: installing buildah (Debian's)" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah >&2
fi

# image <name:tag> <root filesystem directory> <buildah config options...>
image() {
  local name=$1 rootfs=$2 archive work bah ctr
  shift 2
  archive="$out/$(basename "$name" | tr : _).oci.tar"
  if [ ! -f "$archive" ]; then
    work=$(mktemp -d "$out/tmp.XXXXXX")
    bah=(buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs)
    ctr=$("${bah[@]}" from --quiet scratch)
    "${bah[@]}" copy --quiet "$ctr" "$rootfs/" /
    "${bah[@]}" config "$@" --user 65532:65532 --os linux --arch amd64 "$ctr"
    "${bah[@]}" commit --quiet --timestamp 0 "$ctr" "$name" >/dev/null
    "${bah[@]}" push --quiet "$name" "oci-archive:$archive.tmp:$name"
    mv "$archive.tmp" "$archive"
    "${bah[@]}" rm --all >/dev/null 2>&1 || true
    rm -rf "$work"
  fi
  echo "$archive $name"
}

# A root filesystem holding one static program at /.
single_binary_rootfs() {
  local dir
  dir=$(mktemp -d "$out/rootfs.XXXXXX")
  install -m 0755 "$1" "$dir/"
  echo "$dir"
}

rootfs=$(single_binary_rootfs "$bin/pause")
image "localhost/ciclo-e2e/pause:$pause_version" "$rootfs" --entrypoint '["/pause"]'
rm -rf "$rootfs"
rootfs=$(single_binary_rootfs "$bin/coredns")
image "localhost/ciclo-e2e/coredns:$coredns_version" "$rootfs" --entrypoint '["/coredns"]'
rm -rf "$rootfs"

# BusyBox (Debian's static build), for the tests' own pods: a shell and the usual tools
# (wget, nslookup, sleep) in an image of a few hundred KiB, as docker.io's busybox is.
if [ ! -x /bin/busybox ]; then
  echo "images.sh: installing busybox-static (Debian package)" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >&2
fi
# Tagged with its major.minor release (Debian's stable release keeps it); e2e/tests/src/images.rs
# names it so.
busybox_version=$(dpkg-query -W -f '${Version}' busybox-static | sed -E 's/^[0-9]*://; s/^([0-9]+\.[0-9]+).*/\1/')
rootfs=$(mktemp -d "$out/rootfs.XXXXXX")
mkdir -p "$rootfs/bin" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"
install -m 0755 /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
done
image "localhost/ciclo-e2e/busybox:$busybox_version" "$rootfs" --cmd '["sh"]' --env PATH=/bin
rm -rf "$rootfs"

# Python (Debian's python3 on a minimal Debian, from Debian's own archive by debootstrap, with the
# CA certificates every HTTPS client in an image expects, as python:3.11-slim has them), for
# the trainers and user runtimes the tests write in Python. Its tag is Python's major.minor.
python_rootfs() {
  local dir=$1
  if ! command -v debootstrap >/dev/null; then
    echo "images.sh: installing debootstrap (Debian package)" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2
  fi
  echo "images.sh: debootstrap of Debian bookworm (minbase) with python3, once" >&2
  debootstrap --variant=minbase --include=python3,ca-certificates bookworm "$dir" http://deb.debian.org/debian \
    >"$out/debootstrap.log" 2>&1 || { tail -20 "$out/debootstrap.log" >&2; exit 1; }
  # What a running container never reads: package lists and caches, documentation, locales.
  rm -rf "$dir"/var/cache/apt/* "$dir"/var/lib/apt/lists/* "$dir"/usr/share/{doc,man,info,locale}
  echo 'nonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin' >>"$dir/etc/passwd"
  echo 'nonroot:x:65532:' >>"$dir/etc/group"
  mkdir -p "$dir/home/nonroot" && chown 65532:65532 "$dir/home/nonroot"
}
python_archive=$(compgen -G "$out/python_*.oci.tar" || true)
rootfs=
if [ -n "$python_archive" ]; then
  python_version=${python_archive##*/python_}; python_version=${python_version%.oci.tar}
else
  rootfs=$(mktemp -d "$out/rootfs.XXXXXX")
  python_rootfs "$rootfs"
  python_version=$(chroot "$rootfs" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
fi
# Its entrypoint is python3, as a serving runtime's image has one: a ModelDeployment's runtime
# gives only arguments.
image "localhost/ciclo-e2e/python:$python_version" "$rootfs" --entrypoint '["python3"]' \
  --env PATH=/usr/local/bin:/usr/bin:/bin --env HOME=/home/nonroot
if [ -n "$rootfs" ]; then rm -rf "$rootfs"; fi

# Keep the two newest sets (a changed script or control plane makes a new one).
# shellcheck disable=SC2012 # the names are 16 hex digits
ls -1dt "$cache_root"/node-images/????????????????/ | tail -n +3 | xargs -r rm -rf
