#!/usr/bin/env bash
# Loads an image from an OCI archive into the kubelet node's containerd (its CRI namespace), as
# `kind load image-archive` does: no registry is involved, and a pod asking for the image with
# imagePullPolicy IfNotPresent (or Never) finds it. Prints the image's name and its digest
# reference (<repository>@sha256:…), which pins a pod to exactly this build. Each TAG also
# names it (e.g. the `dev` the e2e values ask for).
#
#   e2e/cluster/load-image.sh ARCHIVE [TAG...]
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLUSTER=$REPO/.cluster
log() { echo "${0##*/}: $*" >&2; }
# shellcheck source=namespaces.sh
. "$REPO/e2e/cluster/namespaces.sh"
# shellcheck source=kubelet-node.sh
. "$REPO/e2e/cluster/kubelet-node.sh"

archive=${1:?usage: load-image.sh ARCHIVE [TAG...]}
shift
[ -f "$archive" ] || { log "no such archive: $archive"; exit 1; }
ns_exists || { log "no kubelet node is running (CLUSTER_NODE=kubelet make cluster-up)"; exit 1; }

# The name and manifest digest the archive's index gives its one image.
read -r name digest < <(tar -xOf "$archive" index.json | python3 -c '
import json, sys
m = json.load(sys.stdin)["manifests"][0]
print(m["annotations"]["org.opencontainers.image.ref.name"], m["digest"])')
ctr_node images import --snapshotter overlayfs "$archive" >/dev/null
# A pull would also record the digest reference; the kubelet asks for it when a pod names the
# image by digest, and would otherwise try a registry.
ctr_node images tag --force "$name" "${name%:*}@$digest" >/dev/null
for tag in "$@"; do ctr_node images tag --force "$name" "${name%:*}:$tag" >/dev/null; done
# grep reads the whole list (with -q it would stop at the first match, and pipefail would see
# ctr killed by SIGPIPE).
ctr_node images ls -q | grep -xF "$name" >/dev/null || { log "$archive did not give the image $name"; exit 1; }
echo "$name ${name%:*}@$digest"
