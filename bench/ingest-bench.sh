#!/usr/bin/env bash
# Ingest benchmark (CI runs it briefly: bench/smoke.sh): throughput agent protocol -> operator ingest -> S3 versus a plain PUT of
# the same bytes to the same kind of S3, in one run, with the same client code (the operator's S3Signer
# and HttpClient), and the operator's peak RSS while ingesting. Also times a bare multipart upload of
# the same bytes through the operator's S3ArtifactStore (no ingest) to show what multipart costs by itself.
# The S3 is Ceph RADOS Gateway (the tests' CephRgwFixture: one monitor, one memstore OSD, radosgw), or
# s3rver with STORE=s3rver. Each path gets a fresh server (a server that already holds the earlier
# paths' gigabytes is measurably slower: memstore). The operator is warmed up first until its JIT is
# done, as in a long-running operator (bench/IngestBench/OperatorWarmUp.cs: uploads of up to 64 MiB
# until two in a row compile under 2 % of the methods the first did, as the runtime's perf map tells), and
# the other paths' servers are first given the same amount of untimed PUTs, so every timed GiB lands
# on a server holding as much.
# CPU seconds per GiB are measured over each timed transfer alone: the client (in-process), the
# operator and the S3 server's processes (/proc).
# Usage: bash bench/ingest-bench.sh [BYTES] (default 1 GiB)
#   env: STORE=rgw|s3rver (rgw), PART_SIZE (Storage:PartSize, 8388608), PARTS_IN_FLIGHT (Storage:PartsInFlight
#   for the ingest and the bare multipart, 1). Figures: bench/INGEST-RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1073741824}
part=${PART_SIZE:-8388608}
in_flight=${PARTS_IN_FLIGHT:-1}
store=${STORE:-rgw}
if [[ -z ${KCB_PREPARED:-} ]]; then # set: installed and built already (bench/smoke.sh after scripts/test.sh)
  bash scripts/setup.sh
  dotnet build operator -c Release -nologo -v q >/dev/null
  dotnet build bench/IngestBench -c Release -nologo -v q >/dev/null
fi
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
cleanup() { [[ -z $operator ]] || { kill "$operator" 2>/dev/null; rm -f "/tmp/perf-$operator.map"; } || true; stop_s3; }
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
# the S3 server's processes, comma-separated: radosgw + ceph-osd + ceph-mon, or s3rver
server_pids() { if [[ $store == rgw ]]; then awk 1 "$ceph_dir"/*.daemon-pid | paste -sd,; else echo "$server_pid"; fi; }
verify() { # verify KEY: the stored object's SHA-256 must be the bytes sent
  local stored; stored=$("${bench[@]}" sha "$s3" "$1")
  [[ $stored == "$expected" ]] || { echo "SHA-256 mismatch for $1: stored $stored, expected $expected"; exit 1; }
}

"${bench[@]}" write "$work/blob" "$size"
expected=$(sha256sum "$work/blob" | cut -d' ' -f1)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

start_s3 ingest
http_port=$(free_port) ingest_port=$(free_port)
DOTNET_PerfMapEnabled=3 dotnet exec operator/bin/Release/net10.0/kubecapture-operator.dll \
  "--Kestrel:Endpoints:Http:Url=http://127.0.0.1:$http_port" "--Kestrel:Endpoints:Ingest:Url=http://127.0.0.1:$ingest_port" \
  "--Storage:S3:Endpoint=$endpoint" "--Storage:S3:Bucket=$bucket" "--Storage:S3:AccessKey=$access" "--Storage:S3:SecretKey=$secret" \
  "--Storage:PartSize=$part" "--Storage:PartsInFlight=$in_flight" --Reconciler:Enabled=false --Ingest:TokenSecret=bench --Ingest:Tls=false --Ingest:BindToPodAddress=false \
  --Logging:LogLevel:Default=Warning >"$work/operator.log" 2>&1 &
operator=$!
until curl -s -o /dev/null "http://127.0.0.1:$http_port/healthz"; do sleep 0.1; done
idle_kib=$(awk '/VmHWM/ {print $2}' "/proc/$operator/status")
warm_round=$((size < (64 << 20) ? size : (64 << 20)))
"${bench[@]}" upload "http://127.0.0.1:$ingest_port" bench "$size" "$operator" "$(server_pids)" "$warm_round" >"$work/ingest.out" 2>"$work/warm-up.log" ||
  { cat "$work/warm-up.log"; echo "the upload through the ingest failed (operator log: $work/operator.log)"; exit 1; }
read -r ingest_s sent_s uri sha ingest_client ingest_operator ingest_server warmed <"$work/ingest.out"
peak_kib=$(awk '/VmHWM/ {print $2}' "/proc/$operator/status")
[[ $sha == "$expected" ]] || { cat "$work/warm-up.log"; echo "the client sent ${sha:-nothing}, expected $expected"; exit 1; }
verify "${uri#s3://"$bucket"/}"
kill "$operator" && wait "$operator" || true
rm -f "/tmp/perf-$operator.map"
operator=""
stop_s3

start_s3 put
"${bench[@]}" put "$s3" "$work/blob" plain/blob "$(server_pids)" "$warmed" >"$work/put.out"
read -r put_s put_client put_server <"$work/put.out"
verify plain/blob
stop_s3

start_s3 multipart
"${bench[@]}" multipart "$s3" "$work/blob" "$part" "$in_flight" "$(server_pids)" "$warmed" >"$work/multipart.out"
read -r multipart_s multipart_client multipart_server <"$work/multipart.out"
stop_s3

mib=$(echo "$size / 1048576" | bc -l) gib=$(echo "$size / 1073741824" | bc -l)
per_gib() { echo "$1 / $gib" | bc -l; }
row() { # row LABEL SECONDS CLIENT OPERATOR SERVER
  local total; total=$(echo "$3 + $4 + $5" | bc -l)
  printf '%-32s %7.2f s %7.1f MiB/s   CPU s per GiB: client %5.2f  operator %5.2f  S3 server %5.2f  total %5.2f\n' \
    "$1" "$2" "$(echo "$mib / $2" | bc -l)" "$(per_gib "$3")" "$(per_gib "$4")" "$(per_gib "$5")" "$(per_gib "$total")"
}
printf 'store %s; bytes %d (%.0f MiB), part size %d, parts in flight %d; %d cores; load average %s at the start, %s at the end\n' \
  "$store" "$size" "$mib" "$part" "$in_flight" "$(nproc)" "$load_start" "$(cut -d' ' -f1-3 /proc/loadavg)"
row "plain PUT (one signed PUT)" "$put_s" "$put_client" 0 "$put_server"
row "bare multipart (no ingest)" "$multipart_s" "$multipart_client" 0 "$multipart_server"
row "ingest (gRPC -> operator -> S3)" "$ingest_s" "$ingest_client" "$ingest_operator" "$ingest_server"
printf 'ingest: all bytes sent after %.2f s; operator warmed up with %d MiB first (%s CPU s), every server holding as much before its timed transfer\n' \
  "$sent_s" $((warmed >> 20)) "$(awk '/round/ {r[++n] = $(NF - 2)} END {printf "%d rounds, the first %s, the last %s", n, r[1], r[n]}' "$work/warm-up.log")"
printf 'ratio ingest / plain PUT: time %.2f; CPU end to end %.2f (the PUT'"'"'s client + S3 server over the ingest'"'"'s client + operator + S3 server)\n' \
  "$(echo "$put_s / $ingest_s" | bc -l)" "$(echo "($put_client + $put_server) / ($ingest_client + $ingest_operator + $ingest_server)" | bc -l)"
printf '                          the operator'"'"'s CPU beside the PUT client'"'"'s: %.2f (%.2f / %.2f CPU s per GiB)\n' \
  "$(echo "$put_client / $ingest_operator" | bc -l)" "$(per_gib "$put_client")" "$(per_gib "$ingest_operator")"
printf 'ratio ingest / multipart: time %.2f\n' "$(echo "$multipart_s / $ingest_s" | bc -l)"
printf 'operator peak RSS %.1f MiB (idle after start %.1f MiB)\n' "$(echo "$peak_kib / 1024" | bc -l)" "$(echo "$idle_kib / 1024" | bc -l)"
echo "SHA-256 verified (ingest and plain PUT objects): $sha"
