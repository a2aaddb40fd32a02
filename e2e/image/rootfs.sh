#!/usr/bin/env bash
# Lays out the whole root filesystem of the ciclo image in OUT_DIR: `ciclo`, ONNX Runtime's
# library beside it, the C and C++ runtime libraries both need (and nothing else), the CA
# bundle TLS to a real object store needs, and the few /etc files a shell-less base lacks. The Dockerfile's build stage and e2e/image/build.sh (CI, buildah)
# both run this script, so the image a registry gets and the image CI tests hold the same
# files, built with the same flags.
#
#   e2e/image/rootfs.sh OUT_DIR     (honours CARGO_TARGET_DIR, CICLO_IMAGE_PROFILE)
set -euo pipefail

out=${1:?usage: rootfs.sh OUT_DIR}
cd "$(dirname "$0")/../.."

# Linked dynamically against glibc: `ciclo serve` loads ONNX Runtime (a C++ library) at run
# time, and a statically linked program that loads a library linked against libc.so.6 has
# two C libraries in one process (it crashed at once). glibc >= 2.34 has its `files` and
# `dns` resolvers inside libc.so.6, so names resolve through /etc/hosts and /etc/resolv.conf
# with no NSS module beside it (e2e/image/test.sh checks both).
target=x86_64-unknown-linux-gnu
# CICLO_IMAGE_PROFILE=dev: an unoptimised binary, for a CI that cannot afford the optimised
# build from nothing; what ships is built with the `image` profile.
profile=${CICLO_IMAGE_PROFILE:-image}
cargo build --locked --profile "$profile" -p ciclo --target "$target"
dir=$profile; [ "$profile" != dev ] || dir=debug
bin=${CARGO_TARGET_DIR:-target}/$target/$dir/ciclo
# libonnxruntime.so.1 from PyPI's onnxruntime wheel, its SHA-256 pinned.
onnxruntime=$(e2e/onnxruntime/fetch.sh)

ca=/etc/ssl/certs/ca-certificates.crt
[ -s "$ca" ] || { echo "rootfs.sh: no CA bundle at $ca (install ca-certificates)" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out/etc/ssl/certs"
install -m 0755 "$bin" "$out/ciclo"
# Beside /ciclo, where `ciclo serve` looks for it.
install -m 0644 "$onnxruntime" "$out/libonnxruntime.so.1"
# The program interpreter and every library the two need, at the paths ldd resolves them to
# on the build machine (the loader's default directories), as regular files.
ldd "$bin" "$onnxruntime" | awk '$2 == "=>" && $3 ~ /^\// {print $3} NF > 1 && $1 ~ /^\// {print $1}' |
  sort -u | while read -r lib; do
    install -D -m 0755 "$(readlink -f "$lib")" "$out$lib"
  done
# rustls-platform-verifier (object_store, kube) reads the system roots from this path.
install -m 0644 "$ca" "$out/etc/ssl/certs/ca-certificates.crt"
# The user the pods run as (uid/gid 65532, as in distroless' "nonroot"), so that tools and
# logs show a name; nothing in ciclo looks it up.
printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
  'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' > "$out/etc/passwd"
printf '%s\n' 'root:x:0:' 'nonroot:x:65532:' > "$out/etc/group"
# The order names are looked up in: /etc/hosts (the kubelet's: localhost, the pod's own
# name), then DNS. glibc 2.36 has the same order built in; the file states it for any reader.
printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' > "$out/etc/nsswitch.conf"
chmod 0644 "$out"/etc/{passwd,group,nsswitch.conf}
