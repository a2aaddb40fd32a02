#!/usr/bin/env bash
# Starts SeaweedFS (`weed server -filer -s3`), the S3-compatible object store of the tests and
# the demo, on 127.0.0.1 only, or, with the kubelet node's cluster up, inside its private
# network namespace on every address there (down.sh). State (data, log, pid) lives in $REPO/.objectstore/ (git-ignored).
# A running store is left alone. Ports (environment, defaults): CICLO_S3_PORT=18333, and the
# store's internal ones CICLO_WEED_MASTER_PORT=19333, CICLO_WEED_VOLUME_PORT=18080,
# CICLO_WEED_FILER_PORT=18888 (each also uses its port + 10000 for gRPC).
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

# Writes (and deletes) one object: a bucket's first write makes its first volume, so this
# waits until the store takes writes, not only answers.
writable() {
  local url="http://127.0.0.1:$S3_PORT/$ARTIFACT_BUCKET/.ciclo-write-probe"
  "${IN_NET[@]}" curl -sf -o /dev/null --noproxy '*' --max-time 10 -X PUT --data-binary probe "$url" &&
    "${IN_NET[@]}" curl -sf -o /dev/null --noproxy '*' --max-time 10 -X DELETE "$url"
}

if weed_pid >/dev/null && s3_answers; then
  make_bucket
  log "already running: S3 endpoint on port $S3_PORT"
  exit 0
fi
down_main
weed=$("$REPO/e2e/objectstore/build.sh")
mkdir -p "$STATE/data" "$STATE/log"
# A volume server on a nearly full disk marks every volume read-only, and each PUT then fails
# with a bare 500; say so up front instead.
free_mib=$(df -Pm "$STATE/data" | awk 'NR==2 {print $4}')
if [ "$free_mib" -lt "$MIN_FREE_MIB" ]; then
  log "ERROR: only $free_mib MiB free under $STATE/data; the store needs $MIN_FREE_MIB MiB (CICLO_S3_MIN_FREE_MIB)"
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
ip=127.0.0.1 bind=127.0.0.1
if [ ${#IN_NET[@]} -gt 0 ]; then ip=$NODE_IP bind=0.0.0.0; fi
WEED_MASTER_VOLUME_GROWTH_COPY_1=1 nohup setsid "${IN_NET[@]}" "$weed" -logdir="$STATE/log" server -ip="$ip" -ip.bind="$bind" -dir="$STATE/data" \
  -master.port="$MASTER_PORT" -volume.port="$VOLUME_PORT" -filer -filer.port="$FILER_PORT" \
  -s3 -s3.port="$S3_PORT" -metricsPort=0 \
  -master.volumeSizeLimitMB=64 -volume.max=0 -volume.minFreeSpace=512MiB >"$STATE/weed.log" 2>&1 </dev/null &
echo $! >"$PIDFILE"
readlink -f "$weed" >"$PIDFILE.exe"
for _ in $(seq 1 300); do
  if s3_answers; then
    make_bucket
    if writable; then
      log "S3 endpoint http://$ip:$S3_PORT (log $STATE/weed.log)"
      exit 0
    fi
  fi
  weed_pid >/dev/null || { log "ERROR: weed exited; see $STATE/weed.log"; exit 1; }
  sleep 0.2
done
log "ERROR: S3 did not take a write within 60 s; see $STATE/weed.log and $STATE/log/"
exit 1
