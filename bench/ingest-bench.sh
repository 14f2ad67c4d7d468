#!/usr/bin/env bash
# Ingest benchmark (CI runs it briefly: bench/smoke.sh): throughput agent protocol -> operator ingest -> S3 versus a plain PUT of
# the same bytes to the same kind of S3, in one run, with the same client code (the operator's S3Signer
# and HttpClient), and the operator's peak RSS while ingesting. Also times a bare multipart upload of
# the same bytes through the operator's S3ArtifactStore (no ingest) to show what multipart costs by itself.
# The S3 is Ceph RADOS Gateway (the tests' CephRgwFixture: one monitor, one memstore OSD, radosgw), or
# s3rver with STORE=s3rver. Each path gets a fresh, empty server (a server that already holds the
# earlier paths' gigabytes is measurably slower: memstore), and the operator is warmed up with 64 MiB
# (JIT) before its 1 GiB is timed, as a long-running operator would be.
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
rm -rf "$work" && mkdir -p "$work"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
bench=(dotnet exec bench/IngestBench/bin/Release/net10.0/IngestBench.dll)
server_pid="" operator=""
stop_s3() {
  if [[ $store == rgw ]]; then exec 3>&-; else [[ -z $server_pid ]] || kill "$server_pid" 2>/dev/null || true; fi
  [[ -z $server_pid ]] || while kill -0 "$server_pid" 2>/dev/null; do sleep 0.1; done # serve-rgw stops Ceph when its stdin closes
  server_pid=""
}
cleanup() { [[ -z $operator ]] || kill "$operator" 2>/dev/null || true; stop_s3; }
trap cleanup EXIT

# start_s3 NAME: a fresh server; sets endpoint bucket access secret s3 server_pid, and server_pids() lists its processes
start_s3() {
  rm -rf "$work/$1" && mkdir -p "$work/$1"
  if [[ $store == rgw ]]; then
    exec 3> >(exec "${bench[@]}" serve-rgw "$work/$1/rgw.env" >"$work/$1/rgw.log" 2>&1)
    server_pid=$!
    until [[ -s $work/$1/rgw.env ]]; do sleep 0.1; done
    read -r endpoint bucket access secret ceph_dir <"$work/$1/rgw.env"
  else
    local port; port=$(free_port)
    .tools/s3rver/node_modules/.bin/s3rver -d "$work/$1" -a 127.0.0.1 -p "$port" --silent --configure-bucket kubecapture >"$work/$1.log" 2>&1 &
    server_pid=$!
    endpoint=http://127.0.0.1:$port bucket=kubecapture access=S3RVER secret=S3RVER
    until curl -s -o /dev/null "$endpoint/"; do sleep 0.1; done
  fi
  s3="$endpoint,$bucket,$access,$secret"
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# the S3 server's processes: radosgw + ceph-osd + ceph-mon, or s3rver
server_pids() { if [[ $store == rgw ]]; then awk 1 "$ceph_dir"/*.daemon-pid; else echo "$server_pid"; fi; }
server_ticks() { for p in $(server_pids); do cpu_ticks "$p"; done | paste -sd+ | bc; }
server_cpu() { echo "($(server_ticks) - $server_mark) / $(getconf CLK_TCK)" | bc -l; }
timed_client() { /usr/bin/time -f '%U %S' -o "$work/client.cpu" "$@"; }
client_cpu() { awk '{print $1 + $2}' "$work/client.cpu"; }
verify() { # verify KEY: the stored object's SHA-256 must be the bytes sent
  local stored; stored=$("${bench[@]}" sha "$s3" "$1")
  [[ $stored == "$expected" ]] || { echo "SHA-256 mismatch for $1: stored $stored, expected $expected"; exit 1; }
}

"${bench[@]}" write "$work/blob" "$size"
expected=$(sha256sum "$work/blob" | cut -d' ' -f1)

start_s3 put
server_mark=$(server_ticks)
put_s=$(timed_client "${bench[@]}" put "$s3" "$work/blob" plain/blob)
put_client=$(client_cpu) put_server=$(server_cpu)
verify plain/blob
stop_s3

start_s3 multipart
server_mark=$(server_ticks)
multipart_s=$(timed_client "${bench[@]}" multipart "$s3" "$work/blob" "$part" "$in_flight")
multipart_client=$(client_cpu) multipart_server=$(server_cpu)
stop_s3

start_s3 ingest
http_port=$(free_port) ingest_port=$(free_port)
dotnet exec operator/bin/Release/net10.0/kubecapture-operator.dll \
  "--Kestrel:Endpoints:Http:Url=http://127.0.0.1:$http_port" "--Kestrel:Endpoints:Ingest:Url=http://127.0.0.1:$ingest_port" \
  "--Storage:S3:Endpoint=$endpoint" "--Storage:S3:Bucket=$bucket" "--Storage:S3:AccessKey=$access" "--Storage:S3:SecretKey=$secret" \
  "--Storage:PartSize=$part" "--Storage:PartsInFlight=$in_flight" --Reconciler:Enabled=false --Ingest:TokenSecret=bench --Ingest:Tls=false --Ingest:BindToPodAddress=false \
  --Logging:LogLevel:Default=Warning >"$work/operator.log" 2>&1 &
operator=$!
until curl -s -o /dev/null "http://127.0.0.1:$http_port/healthz"; do sleep 0.1; done
idle_kib=$(awk '/VmHWM/ {print $2}' "/proc/$operator/status")
"${bench[@]}" upload "http://127.0.0.1:$ingest_port" bench $((size < (64 << 20) ? size : (64 << 20))) >/dev/null # warm-up (JIT), not timed
warm_kib=$(awk '/VmHWM/ {print $2}' "/proc/$operator/status")
operator_cpu0=$(cpu_ticks "$operator")
server_mark=$(server_ticks)
read -r ingest_s sent_s uri sha < <(timed_client "${bench[@]}" upload "http://127.0.0.1:$ingest_port" bench "$size")
wait $! # the client has written its CPU time
ingest_client=$(client_cpu) ingest_server=$(server_cpu)
peak_kib=$(awk '/VmHWM/ {print $2}' "/proc/$operator/status")
operator_cpu_s=$(echo "($(cpu_ticks "$operator") - $operator_cpu0) / $(getconf CLK_TCK)" | bc -l)
[[ $sha == "$expected" ]] || { echo "the client sent $sha, expected $expected"; exit 1; }
verify "${uri#s3://"$bucket"/}"

mib=$(echo "$size / 1048576" | bc -l)
printf 'store %s; bytes %d (%.0f MiB), part size %d, parts in flight %d; load average %s\n' "$store" "$size" "$mib" "$part" "$in_flight" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'plain PUT (one signed PUT)    %7.2f s  %7.1f MiB/s  CPU s: client %.2f, S3 server %.2f\n' "$put_s" "$(echo "$mib / $put_s" | bc -l)" "$put_client" "$put_server"
printf 'bare multipart (no ingest)    %7.2f s  %7.1f MiB/s  CPU s: client %.2f, S3 server %.2f\n' "$multipart_s" "$(echo "$mib / $multipart_s" | bc -l)" "$multipart_client" "$multipart_server"
printf 'ingest (gRPC -> operator -> S3) %5.2f s  %7.1f MiB/s  CPU s: client %.2f, operator %.2f, S3 server %.2f (all bytes sent after %.2f s)\n' "$ingest_s" "$(echo "$mib / $ingest_s" | bc -l)" "$ingest_client" "$operator_cpu_s" "$ingest_server" "$sent_s"
printf 'ratio ingest / plain PUT      %7.2f\n' "$(echo "$put_s / $ingest_s" | bc -l)"
printf 'ratio ingest / multipart      %7.2f\n' "$(echo "$multipart_s / $ingest_s" | bc -l)"
printf 'operator peak RSS             %7.1f MiB (idle after start %.1f MiB, after the 64 MiB warm-up %.1f MiB)\n' "$(echo "$peak_kib / 1024" | bc -l)" "$(echo "$idle_kib / 1024" | bc -l)" "$(echo "$warm_kib / 1024" | bc -l)"
echo "SHA-256 verified (ingest and plain PUT objects): $sha"
