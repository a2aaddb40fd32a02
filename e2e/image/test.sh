#!/usr/bin/env bash
# Checks the image e2e/image/build.sh made (building it first if needed) for what a cluster
# relies on: its metadata (labels, user, entrypoint), its files (the binary, ONNX Runtime and
# the libraries they need, CA roots, no shell), the binary running inside it under an OCI runtime as uid 65532, `ciclo serve`
# answering an inference, and host names resolving through /etc/hosts and through DNS as the
# kubelet sets them up. Each check prints ok or FAIL with the evidence; the last line counts
# them; any FAIL exits 1.
#
# Everything runs in a network namespace of its own (unshare --net): a DNS server and a
# one-file S3 bucket listen on its 127.0.0.1 (loopback_services.py), nothing can leave it,
# and the containers share it (buildah run --network host).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

if [ "${CICLO_IMAGE_TEST_NETNS:-}" != 1 ]; then
  "$here/build.sh"
  # The context check loads the workspace offline inside the namespace: every package of the
  # lock file (for every target, as `cargo metadata` resolves them all) must be in the local
  # registry first, and a build for this host alone downloads only its own.
  (cd "$repo" && cargo fetch --locked --quiet)
  exec unshare --net env CICLO_IMAGE_TEST_NETNS=1 "$0" "$@"
fi
ip link set lo up

archive=$("$here/build.sh" --archive)
version=$(awk -F'"' '/^\[workspace.package\]/ {p = 1} p && $1 ~ /^version *= */ {print $2; exit}' \
  "$repo/Cargo.toml")
work=$(mktemp -d)
bah=(buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs)
services_pid=
cleanup() {
  [ -z "$services_pid" ] || kill "$services_pid" 2>/dev/null || true
  "${bah[@]}" rm --all >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

passed=0 failed=0
check() {
  local name=$1 out; shift
  if out=$("$@" 2>&1); then
    echo "ok   $name"; passed=$((passed + 1))
  else
    echo "FAIL $name"; tail -20 <<<"$out" | sed 's/^/     /'; failed=$((failed + 1))
  fi
}

# What the kubelet gives every container: /etc/hosts (with the pod's own names) and a
# resolv.conf naming the cluster's DNS server. `single-request`: this machine's sandboxed
# kernel loses the second of the two queries glibc sends at once (sendmmsg) over loopback;
# sent one at a time, the same resolver code gets its answers.
printf '%s\n' '127.0.0.1 localhost' '127.0.0.1 hosts-only.ciclo.test' > "$work/hosts"
printf '%s\n' 'nameserver 127.0.0.1' 'options single-request' > "$work/resolv.conf"
python3 "$here/loopback_services.py" "$work/requests.log" 18333 & services_pid=$!

image=$("${bah[@]}" pull --quiet "oci-archive:$archive")
# --dns none and --no-hosts: buildah would otherwise mount the machine's own resolv.conf and
# hosts over ours, in no fixed order (and its resolver is no loopback address).
ctr=$("${bah[@]}" from --pull-never --dns none "$image")
root=$("${bah[@]}" mount "$ctr")

# Runs the image's entrypoint under runc, as the image's user (buildah run takes USER from
# the image), with the kubelet-like /etc files and serve's test fixtures mounted read-only.
in_image() {
  "${bah[@]}" run --runtime runc --network host --no-hosts -v "$work/hosts:/etc/hosts:ro" \
    -v "$work/resolv.conf:/etc/resolv.conf:ro" \
    -v "$repo/operator/serve/tests/fixtures:/models:ro" "$ctr" -- /ciclo "$@"
}

# --- the Docker build context ------------------------------------------------------------
# The Dockerfile's build stage cannot run here (no base image), but its context can be made
# by the same ignore rules: cargo must load the whole workspace from it, locked.
context_holds_the_workspace() {
  local built ctx_root path
  printf 'FROM scratch\nCOPY . /context/\n' >"$work/context.Dockerfile"
  built=$("${bah[@]}" bud --quiet --ignorefile "$repo/operator/Dockerfile.dockerignore" \
            --file "$work/context.Dockerfile" "$repo") || return 1
  ctx_root=$("${bah[@]}" mount "$("${bah[@]}" from --pull-never "$built")")/context
  [ -x "$ctx_root/e2e/image/rootfs.sh" ] || { echo "no e2e/image/rootfs.sh in the context"; return 1; }
  for path in .git target .cluster e2e/cluster docs; do
    [ ! -e "$ctx_root/$path" ] || { echo "the context holds $path"; return 1; }
  done
  # Offline (fetched before the namespace): only the context counts.
  (cd "$ctx_root" && cargo metadata --locked --offline --format-version 1 >/dev/null)
}
check "operator/Dockerfile.dockerignore sends a context cargo loads the workspace from (--locked), no .git or target/" \
  context_holds_the_workspace

# --- metadata --------------------------------------------------------------------------
config_is_as_shipped() {
  "${bah[@]}" inspect --type image "$image" | python3 -c '
import json, sys
config, version, revision = json.load(sys.stdin)["OCIv1"]["config"], sys.argv[1], sys.argv[2]
labels = config.get("Labels") or {}
want = {
    "org.opencontainers.image.title": "ciclo",
    "org.opencontainers.image.source": "https://github.com/ciclo-dev/ciclo",
    "org.opencontainers.image.licenses": "Apache-2.0",
    "org.opencontainers.image.version": version,
}
wrong = {k: labels.get(k) for k, v in want.items() if labels.get(k) != v}
assert not wrong, f"labels {wrong}, want {want}"
assert labels.get("org.opencontainers.image.revision", "").startswith(revision), labels
assert labels.get("org.opencontainers.image.description"), "no description label"
assert config.get("User") == "65532:65532", "user " + repr(config.get("User"))
assert config.get("Entrypoint") == ["/ciclo"], "entrypoint " + repr(config.get("Entrypoint"))
' "$version" "$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)"
}
check "OCI labels (version $version, this revision), USER 65532:65532, ENTRYPOINT /ciclo" \
  config_is_as_shipped

# --- files -----------------------------------------------------------------------------
only_the_expected_files() {
  local files writable
  files=$(cd "$root" && find . -mindepth 1 ! -type d | LC_ALL=C sort | tr '\n' ' ')
  [ "$files" = "./ciclo ./etc/group ./etc/nsswitch.conf ./etc/passwd ./etc/ssl/certs/ca-certificates.crt $runtime_files" ] \
    || { echo "files: $files"; return 1; }
  # Owned by root and writable by root only: uid 65532 can change nothing in the image.
  writable=$(cd "$root" && find . \( ! -user 0 -o -perm /022 \) -printf '%M %u %p\n')
  [ -z "$writable" ] || { echo "not root's, or writable by others: $writable"; return 1; }
}
# ONNX Runtime's library beside /ciclo, and the loader and C/C++ runtime libraries the two
# need: nothing more. (OpenSSL and zlib: libgit2's HTTPS and pack compression, for write-back.)
runtime_files="./lib/x86_64-linux-gnu/libc.so.6 ./lib/x86_64-linux-gnu/libcrypto.so.3 ./lib/x86_64-linux-gnu/libdl.so.2 ./lib/x86_64-linux-gnu/libgcc_s.so.1 ./lib/x86_64-linux-gnu/libm.so.6 ./lib/x86_64-linux-gnu/libpthread.so.0 ./lib/x86_64-linux-gnu/librt.so.1 ./lib/x86_64-linux-gnu/libssl.so.3 ./lib/x86_64-linux-gnu/libstdc++.so.6 ./lib/x86_64-linux-gnu/libz.so.1 ./lib64/ld-linux-x86-64.so.2 ./libonnxruntime.so.1 "
check "no shell: only /ciclo, ONNX Runtime's library and the runtime libraries they need, passwd, group, nsswitch.conf and the CA bundle, all root's, read-only to others" \
  only_the_expected_files

# Every library /ciclo and /libonnxruntime.so.1 name (readelf: NEEDED), and /ciclo's program
# interpreter, is a file of the image: it runs with the image's files alone.
linked_against_the_images_libraries() {
  local interp needed missing=''
  interp=$(readelf -lW "$root/ciclo" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
  [ "$interp" = /lib64/ld-linux-x86-64.so.2 ] || { echo "interpreter: ${interp:-none}"; return 1; }
  needed=$(readelf -dW "$root/ciclo" "$root/libonnxruntime.so.1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort -u)
  for lib in $needed; do
    [ -f "$root/lib/x86_64-linux-gnu/$lib" ] || [ -f "$root/lib64/$lib" ] || missing="$missing $lib"
  done
  echo "needed: $(tr '\n' ' ' <<<"$needed")"
  [ -z "$missing" ] || { echo "not in the image:$missing"; return 1; }
}
check "/ciclo's interpreter and every library it and libonnxruntime.so.1 need are in the image" \
  linked_against_the_images_libraries

ca_roots() {
  local n
  n=$(grep -c 'BEGIN CERTIFICATE' "$root/etc/ssl/certs/ca-certificates.crt")
  echo "$n certificates"
  [ "$n" -ge 100 ]
}
check "CA roots at /etc/ssl/certs/ca-certificates.crt, where rustls-native-certs reads them" ca_roots

# --- the binary in the image -------------------------------------------------------------
says_its_version() {
  local out
  out=$(in_image --version)
  [ "$out" = "ciclo $version" ] || { echo "--version printed: $out"; return 1; }
}
check "ciclo --version prints 'ciclo $version'" says_its_version

lists_every_part() {
  local out part
  out=$(in_image --help)
  for part in operator dataset train serve lineage crds; do
    grep -qE "^  $part " <<<"$out" || { echo "no '$part' in: $out"; return 1; }
  done
}
check "ciclo --help lists operator, dataset, train, serve, lineage, crds" lists_every_part

prints_the_committed_crds() {
  diff <(in_image crds) "$repo/crds/ciclo.dev.yaml" | head -20
  [ "${PIPESTATUS[0]}" = 0 ]
}
check "ciclo crds prints crds/ciclo.dev.yaml as committed" prints_the_committed_crds

# clap exits 2 on a usage error; anything past parsing exits 0 or 1.
train_parses_its_flags() {
  local rc=0
  in_image train --help | grep -q -- '--trainer' || { echo "train --help has no --trainer"; return 1; }
  in_image train >/dev/null 2>"$work/err" || rc=$?
  if [ "$rc" != 2 ] || ! grep -q -- '--dataset' "$work/err"; then
    echo "without flags: exit $rc"; cat "$work/err"; return 1
  fi
  rc=0
  in_image train --dataset file:///nowhere/ --manifest file:///nowhere/manifest.json \
    --version v1 --output file:///nowhere/out/ \
    --trainer '{"algorithm": "LinearRegression", "target": "b", "features": ["a"]}' \
    >"$work/out" 2>&1 || rc=$?
  [ "$rc" = 1 ] || { echo "with every flag: exit $rc"; cat "$work/out"; return 1; }
}
check "ciclo train: usage error (2) without flags; with all of them it parses, then fails on the missing data (1)" \
  train_parses_its_flags

# The ONNX fixture of ciclo-serve's tests: label = argmax(x·W + b); for x = [1, 2, 3] the
# scores are [-3.9, 3.55], so the label is 1.
serves_an_inference_as_uid_65532() {
  local serve_pid pid='' status
  in_image serve --model-uri file:///models/linear.onnx --port 18080 --drain-seconds 0 \
    >"$work/serve.log" 2>&1 & serve_pid=$!
  for _ in $(seq 100); do
    curl -fsS http://127.0.0.1:18080/v2/health/ready >/dev/null 2>&1 && break
    kill -0 "$serve_pid" 2>/dev/null || { echo "serve exited:"; cat "$work/serve.log"; return 1; }
    sleep 0.2
  done
  pid=$(ss -ltnpH 'sport = :18080' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
  if [ -z "$pid" ]; then
    echo "serve not ready after 20 s:"; cat "$work/serve.log"; kill "$serve_pid"; return 1
  fi
  status=$(grep -E '^(Uid|Gid):' "/proc/$pid/status" | tr -s '\t' ' ')
  curl -fsS http://127.0.0.1:18080/v2/models/model/infer -H 'content-type: application/json' \
    -d '{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}' \
    >"$work/infer.json" || true
  kill -TERM "$pid"; wait "$serve_pid" || true
  echo "$status"; cat "$work/infer.json"; echo
  python3 -c '
import json, sys
outputs = {o["name"]: o["data"] for o in json.load(open(sys.argv[1]))["outputs"]}
assert outputs["label"] == [1], outputs' "$work/infer.json" || return 1
  [ "$status" = "$(printf 'Uid: 65532 65532 65532 65532\nGid: 65532 65532 65532 65532')" ]
}
check "ciclo serve answers /v2/models/model/infer (label 1) from a process running as uid/gid 65532" \
  serves_an_inference_as_uid_65532

# --- host names --------------------------------------------------------------------------
# `ciclo dataset id` lists and reads the bucket through object_store; the bucket logs the
# Host header of every request, so a request there proves the name resolved.
reads_the_bucket_at() {
  local host=$1 out
  : >"$work/requests.log"
  out=$(in_image dataset id --source s3://data/iris --source-force-path-style \
          --source-endpoint "http://$host:18333" 2>&1) || { echo "$out"; return 1; }
  echo "$out"
  grep -q '"files":1' <<<"$out" && grep -q "^$host:18333 /data" "$work/requests.log"
}
check "a name only the DNS server knows (store.ciclo.test) resolves: the dataset is read through it" \
  reads_the_bucket_at store.ciclo.test
check "a name only /etc/hosts knows resolves although DNS says NXDOMAIN: the kubelet's hosts file is read" \
  reads_the_bucket_at hosts-only.ciclo.test
unknown_name_is_a_dns_error() {
  local out
  if out=$(in_image dataset id --source s3://data/iris --source-endpoint http://nowhere.ciclo.test:18333 2>&1); then
    echo "resolved a name nobody knows: $out"; return 1
  fi
  grep -iE 'dns|lookup|resolve' <<<"$out"
}
check "a name nobody knows fails with a name-resolution error (the two checks above can fail)" \
  unknown_name_is_a_dns_error

echo "image: $passed passed, $failed failed"
[ "$failed" = 0 ]
