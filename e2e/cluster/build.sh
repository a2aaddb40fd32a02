#!/usr/bin/env bash
# Builds the local cluster (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
# etcd; the node's kubelet and kube-proxy, CoreDNS, and the pause program of the pods'
# sandboxes) from the upstream Go modules pinned in e2e/cluster/{k8s,etcd,coredns}/go.mod into
# a cache folder outside the repository, keyed by everything that decides the output. A
# matching cache is reused as is, so only the first run on a machine pays for the build.
#
#   e2e/cluster/build.sh            build if needed, print the bin directory
#   e2e/cluster/build.sh --dir      print the bin directory only (may not exist yet)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache_root=${CICLO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ciclo}

# The release the binaries report; it must match the require line in k8s/go.mod.
k8s_version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$here/k8s/go.mod")
[ -n "$k8s_version" ] || { echo "build.sh: no k8s.io/kubernetes require in k8s/go.mod" >&2; exit 1; }

key=$(cat "$here/build.sh" "$here"/k8s/go.mod "$here"/k8s/go.sum "$here"/k8s/tools.go \
        "$here"/etcd/go.mod "$here"/etcd/go.sum "$here"/etcd/main.go \
        "$here"/coredns/go.mod "$here"/coredns/go.sum "$here"/coredns/main.go <(go version) <(gcc --version) \
      | sha256sum | cut -c1-16)
out="$cache_root/control-plane/$key"

if [ "${1:-}" = "--dir" ]; then echo "$out/bin"; exit 0; fi
if [ -f "$out/complete" ]; then echo "$out/bin"; exit 0; fi

mkdir -p "$out/bin"
# The go command must not rewrite go.mod/go.sum in a clean clone, and must use this
# machine's Go (a toolchain line in a dependency must not trigger a download).
export GOFLAGS=-mod=readonly GOTOOLCHAIN=local CGO_ENABLED=0

major=${k8s_version#v}; minor=${major#*.}; major=${major%%.*}; minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

start=$(date +%s)
echo "build.sh: building Kubernetes $k8s_version, etcd and CoreDNS into $out (first time only)" >&2
(cd "$here/k8s" && for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy; do
   echo "build.sh:   $cmd" >&2
   go build -trimpath -ldflags "$ldflags" -o "$out/bin/$cmd" "k8s.io/kubernetes/cmd/$cmd"
 done)
echo "build.sh:   etcd" >&2
(cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$out/bin/etcd" .)
echo "build.sh:   coredns" >&2
(cd "$here/coredns" && go build -trimpath -ldflags "-s -w" -o "$out/bin/coredns" .)
# The pods' sandbox process, from the source Kubernetes' own pause image is built from (in the
# module the go build above downloaded), linked statically as upstream links it: its image
# holds nothing else.
echo "build.sh:   pause" >&2
pause_src=$(cd "$here/k8s" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c
pause_version=$(awk -F'"' '$1 ~ /PauseVersion *= */ {print $2}' "${pause_src%/build/*}/cmd/kubeadm/app/constants/constants.go")
gcc -Os -Wall -Werror -static -DVERSION="v$pause_version" -o "$out/bin/pause" "$pause_src"
strip "$out/bin/pause"
echo "$pause_version" >"$out/bin/pause.version"
echo "build.sh: done in $(( $(date +%s) - start )) s" >&2
touch "$out/complete"
echo "$out/bin"
