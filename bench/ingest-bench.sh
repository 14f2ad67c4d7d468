#!/usr/bin/env bash
# Ingest benchmark (not in CI): throughput agent protocol -> operator ingest -> S3 versus a plain PUT of
# the same bytes to the same S3, in one run, with the same client code (the operator's S3Signer and
# HttpClient), and the operator's peak RSS while ingesting. Also times a bare multipart upload of the
# same bytes through the operator's S3ArtifactStore (no ingest) to show what multipart costs by itself.
# The S3 is Ceph RADOS Gateway (the tests' CephRgwFixture: one monitor, one memstore OSD, radosgw), or
# s3rver with STORE=s3rver.
# Usage: bash bench/ingest-bench.sh [BYTES] (default 1 GiB)
#   env: STORE=rgw|s3rver (rgw), PART_SIZE (Storage:PartSize, 8388608), PARTS_IN_FLIGHT (Storage:PartsInFlight
#   for the ingest and the bare multipart, 1). Figures: bench/INGEST-RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1073741824}
part=${PART_SIZE:-8388608}
in_flight=${PARTS_IN_FLIGHT:-1}
store=${STORE:-rgw}
bash scripts/setup.sh
dotnet build operator -c Release -nologo -v q >/dev/null
dotnet build bench/IngestBench -c Release -nologo -v q >/dev/null
work=bench/work/ingest
rm -rf "$work" && mkdir -p "$work/s3"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
http_port=$(free_port) ingest_port=$(free_port)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  exec 3>&- 2>/dev/null || true # serve-rgw stops Ceph when its stdin closes
  wait 2>/dev/null || true
}
trap cleanup EXIT
bench=(dotnet exec bench/IngestBench/bin/Release/net10.0/IngestBench.dll)

if [[ $store == rgw ]]; then
  started=$(date +%s.%N)
  exec 3> >("${bench[@]}" serve-rgw "$work/rgw.env" >"$work/rgw.log" 2>&1)
  until [[ -s $work/rgw.env ]]; do sleep 0.1; done
  read -r endpoint bucket access secret ceph_dir <"$work/rgw.env"
  printf 'Ceph RGW up in %.1f s at %s\n' "$(echo "$(date +%s.%N) - $started" | bc -l)" "$endpoint"
else
  s3_port=$(free_port)
  .tools/s3rver/node_modules/.bin/s3rver -d "$work/s3" -a 127.0.0.1 -p "$s3_port" --silent --configure-bucket kubecapture >"$work/s3rver.log" 2>&1 &
  pids+=($!)
  endpoint=http://127.0.0.1:$s3_port bucket=kubecapture access=S3RVER secret=S3RVER
  until curl -s -o /dev/null "$endpoint/"; do sleep 0.1; done
fi
s3="$endpoint,$bucket,$access,$secret"
"${bench[@]}" write "$work/blob" "$size"
expected=$(sha256sum "$work/blob" | cut -d' ' -f1)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# CPU seconds of the S3 server's processes (radosgw + ceph-osd + ceph-mon, or s3rver) since the last call
server_pids() { if [[ $store == rgw ]]; then awk 1 "$ceph_dir"/*.daemon-pid; else echo "${pids[0]}"; fi; }
server_ticks() { for p in $(server_pids); do cpu_ticks "$p"; done | paste -sd+ | bc; }
server_cpu() { echo "($(server_ticks) - $server_mark) / $(getconf CLK_TCK)" | bc -l; }
timed_client() { /usr/bin/time -f '%U %S' -o "$work/client.cpu" "$@"; }
client_cpu() { awk '{print $1 + $2}' "$work/client.cpu"; }
server_mark=$(server_ticks)

put_s=$(timed_client "${bench[@]}" put "$s3" "$work/blob" plain/blob)
put_client=$(client_cpu) put_server=$(server_cpu)
server_mark=$(server_ticks)
multipart_s=$(timed_client "${bench[@]}" multipart "$s3" "$work/blob" "$part" "$in_flight")
multipart_client=$(client_cpu) multipart_server=$(server_cpu)

dotnet exec operator/bin/Release/net10.0/kubecapture-operator.dll \
  "--Kestrel:Endpoints:Http:Url=http://127.0.0.1:$http_port" "--Kestrel:Endpoints:Ingest:Url=http://127.0.0.1:$ingest_port" \
  "--Storage:S3:Endpoint=$endpoint" "--Storage:S3:Bucket=$bucket" "--Storage:S3:AccessKey=$access" "--Storage:S3:SecretKey=$secret" \
  "--Storage:PartSize=$part" "--Storage:PartsInFlight=$in_flight" --Reconciler:Enabled=false --Ingest:TokenSecret=bench \
  --Logging:LogLevel:Default=Warning >"$work/operator.log" 2>&1 &
operator=$!
pids+=($operator)
until curl -s -o /dev/null "http://127.0.0.1:$http_port/healthz"; do sleep 0.1; done
idle_kib=$(awk '/VmHWM/ {print $2}' "/proc/$operator/status")
operator_cpu0=$(cpu_ticks "$operator")
server_mark=$(server_ticks)
read -r ingest_s sent_s uri sha < <(timed_client "${bench[@]}" upload "http://127.0.0.1:$ingest_port" bench "$size")
wait $! # the client has written its CPU time
ingest_client=$(client_cpu) ingest_server=$(server_cpu)
peak_kib=$(awk '/VmHWM/ {print $2}' "/proc/$operator/status")
operator_cpu_s=$(echo "($(cpu_ticks "$operator") - $operator_cpu0) / $(getconf CLK_TCK)" | bc -l)
stored=$("${bench[@]}" sha "$s3" "${uri#s3://"$bucket"/}")
plain=$("${bench[@]}" sha "$s3" plain/blob)
[[ $sha == "$expected" && $stored == "$expected" && $plain == "$expected" ]] || { echo "SHA-256 mismatch: sent $sha, expected $expected, stored $stored, plain PUT $plain"; exit 1; }

mib=$(echo "$size / 1048576" | bc -l)
printf 'store %s; bytes %d (%.0f MiB), part size %d, parts in flight %d; load average %s\n' "$store" "$size" "$mib" "$part" "$in_flight" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'plain PUT (one signed PUT)    %7.2f s  %7.1f MiB/s  CPU s: client %.2f, S3 server %.2f\n' "$put_s" "$(echo "$mib / $put_s" | bc -l)" "$put_client" "$put_server"
printf 'bare multipart (no ingest)    %7.2f s  %7.1f MiB/s  CPU s: client %.2f, S3 server %.2f\n' "$multipart_s" "$(echo "$mib / $multipart_s" | bc -l)" "$multipart_client" "$multipart_server"
printf 'ingest (gRPC -> operator -> S3) %5.2f s  %7.1f MiB/s  CPU s: client %.2f, operator %.2f, S3 server %.2f (all bytes sent after %.2f s)\n' "$ingest_s" "$(echo "$mib / $ingest_s" | bc -l)" "$ingest_client" "$operator_cpu_s" "$ingest_server" "$sent_s"
printf 'ratio ingest / plain PUT      %7.2f\n' "$(echo "$put_s / $ingest_s" | bc -l)"
printf 'ratio ingest / multipart      %7.2f\n' "$(echo "$multipart_s / $ingest_s" | bc -l)"
printf 'operator peak RSS             %7.1f MiB (idle after start %.1f MiB)\n' "$(echo "$peak_kib / 1024" | bc -l)" "$(echo "$idle_kib / 1024" | bc -l)"
echo "SHA-256 verified (ingest and plain PUT objects): $sha"
