#!/usr/bin/env bash
# Starts SeaweedFS (`weed server -filer -s3`), the S3-compatible object stores of the tests and
# the demo, on 127.0.0.1 only, or, with the kubelet node's cluster up, inside its private
# network namespace on every address there (down.sh). Two stores:
# - the shared one, which takes unsigned requests: state in $REPO/.objectstore/ (git-ignored),
#   ports (environment, defaults) CICLO_S3_PORT=18333, and its internal ones
#   CICLO_WEED_MASTER_PORT=19333, CICLO_WEED_VOLUME_PORT=18080, CICLO_WEED_FILER_PORT=18888;
# - the tenants' one, which takes only signed requests from the identities tenants.sh writes
#   (an admin, team-a and team-b, each team's keys limited to its bucket by a policy): state in
#   $REPO/.objectstore/tenants/, ports CICLO_TENANT_S3_PORT=18334,
#   CICLO_TENANT_WEED_MASTER_PORT=19334, CICLO_TENANT_WEED_VOLUME_PORT=18081,
#   CICLO_TENANT_WEED_FILER_PORT=18889.
# Each internal port's + 10000 is its gRPC port. A running store is left alone.
set -euo pipefail

# shellcheck source=down.sh
. "$(dirname "${BASH_SOURCE[0]}")/down.sh"

# The bucket the operator keeps artifacts in (e2e/deploy points it there). Creating a
# bucket that exists is a no-op.
make_bucket() {
  "${IN_NET[@]}" curl -s -o /dev/null -X PUT "http://127.0.0.1:$S3_PORT/$ARTIFACT_BUCKET" || {
    log "ERROR: could not create bucket $ARTIFACT_BUCKET"
    exit 1
  }
}
ARTIFACT_BUCKET=${CICLO_ARTIFACT_BUCKET:-ciclo-artifacts}
MIN_FREE_MIB=${CICLO_S3_MIN_FREE_MIB:-2048}

# Starts weed (unless the one of its pidfile answers already): state folder $1, ports $2 (S3),
# $3 (master), $4 (volume), $5 (filer), then any further arguments. Returns once S3 answers.
start_weed() {
  local state=$1 s3=$2 master=$3 volume=$4 filer=$5
  shift 5
  local pidfile=$state/weed.pid
  if weed_pid "$pidfile" >/dev/null && s3_answers "$s3"; then return 0; fi
  stop_weed "$pidfile"
  mkdir -p "$state/data" "$state/log"
  # A volume server on a nearly full disk marks every volume read-only, and each PUT then fails
  # with a bare 500; say so up front instead.
  local free_mib
  free_mib=$(df -Pm "$state/data" | awk 'NR==2 {print $4}')
  if [ "$free_mib" -lt "$MIN_FREE_MIB" ]; then
    log "ERROR: only $free_mib MiB free under $state/data; the store needs $MIN_FREE_MIB MiB (CICLO_S3_MIN_FREE_MIB)"
    exit 1
  fi
  # setsid + nohup: the store outlives the shell that started it, like the cluster does.
  # Every bucket is a collection with volumes of its own: small volumes and a limit taken from
  # the free disk (-volume.max=0) let the tests make many buckets (the defaults, 30 GB volumes
  # and 8 of them, run out after the first one); one volume per new bucket instead of 7
  # (master.volume_growth.copy_1, through SeaweedFS's WEED_ environment) keeps a reused data
  # directory from running out after a few hundred test buckets.
  # The volume server's free-space floor is absolute (its default, 1 % of the disk, is many GB on
  # a big shared disk); its own log files go to the state folder, not /tmp.
  WEED_MASTER_VOLUME_GROWTH_COPY_1=1 nohup setsid "${IN_NET[@]}" "$weed" -logdir="$state/log" server -ip="$ip" -ip.bind="$bind" -dir="$state/data" \
    -master.port="$master" -volume.port="$volume" -filer -filer.port="$filer" \
    -s3 -s3.port="$s3" -metricsPort=0 \
    -master.volumeSizeLimitMB=64 -volume.max=0 -volume.minFreeSpace=512MiB "$@" >"$state/weed.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  readlink -f "$weed" >"$pidfile.exe"
  for _ in $(seq 1 300); do
    if s3_answers "$s3"; then return 0; fi
    weed_pid "$pidfile" >/dev/null || { log "ERROR: weed exited; see $state/weed.log"; exit 1; }
    sleep 0.2
  done
  log "ERROR: S3 did not answer on port $s3 within 60 s; see $state/weed.log and $state/log/"
  exit 1
}

# Writes (and deletes) one object with curl's further arguments "$@" (the tenants' store: the
# admin's signature): a bucket's first write makes its first volume, so this waits until the
# store takes writes, not only answers.
writable() {
  local url=$1
  shift
  for _ in $(seq 1 300); do
    if "${IN_NET[@]}" curl -sf -o /dev/null --noproxy '*' --max-time 10 "$@" -X PUT --data-binary probe "$url/.ciclo-write-probe" &&
      "${IN_NET[@]}" curl -sf -o /dev/null --noproxy '*' --max-time 10 "$@" -X DELETE "$url/.ciclo-write-probe"; then
      return 0
    fi
    sleep 0.2
  done
  log "ERROR: $url took no write within 60 s; see $STATE/weed.log and $TENANT_STATE/weed.log"
  exit 1
}

ip=127.0.0.1 bind=127.0.0.1
if [ ${#IN_NET[@]} -gt 0 ]; then ip=$NODE_IP bind=0.0.0.0; fi
weed=$("$REPO/e2e/objectstore/build.sh")

# The shared store: accepts unsigned requests, as most tests and the demo use it.
start_weed "$STATE" "$S3_PORT" "$MASTER_PORT" "$VOLUME_PORT" "$FILER_PORT"
make_bucket
writable "http://127.0.0.1:$S3_PORT/$ARTIFACT_BUCKET"
log "S3 endpoint http://$ip:$S3_PORT (log $STATE/weed.log)"

# The tenants' store: a second SeaweedFS that refuses unsigned requests and knows three
# identities (tenants.sh): an admin for the tests' own setup, and two teams whose keys an S3
# policy document limits to their own bucket, as docs/operations.md shows for a platform team.
# Its own data, so no bucket of it is reachable through the shared store's open gateway.
"$REPO/e2e/objectstore/tenants.sh" "$TENANT_STATE"
start_weed "$TENANT_STATE" "$TENANT_S3_PORT" "$TENANT_MASTER_PORT" "$TENANT_VOLUME_PORT" "$TENANT_FILER_PORT" \
  -s3.config="$TENANT_STATE/s3.json"
# curl signs the payload as UNSIGNED-PAYLOAD only when told so (S3 needs the header).
admin=(--aws-sigv4 "aws:amz:us-east-1:s3" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" --user "$(python3 -c 'import json,sys; a=json.load(open(sys.argv[1]))["admin"]; print(a["accessKey"]+":"+a["secretKey"])' "$TENANT_STATE/credentials.json")")
for bucket in $(python3 -c 'import json,sys; print(" ".join(t["bucket"] for n,t in json.load(open(sys.argv[1])).items() if n!="admin"))' "$TENANT_STATE/credentials.json"); do
  "${IN_NET[@]}" curl -s -o /dev/null --noproxy '*' "${admin[@]}" -X PUT "http://127.0.0.1:$TENANT_S3_PORT/$bucket" || {
    log "ERROR: could not create bucket $bucket in the tenants' store"
    exit 1
  }
  writable "http://127.0.0.1:$TENANT_S3_PORT/$bucket" "${admin[@]}"
done
log "tenants' S3 endpoint http://$ip:$TENANT_S3_PORT (keys in $TENANT_STATE/credentials.json, log $TENANT_STATE/weed.log)"
