#!/usr/bin/env bash
# Ingest benchmark (not in CI): throughput agent-protocol -> operator ingest -> s3rver versus a plain
# PUT of the same bytes to the same s3rver, in one run, and the operator's peak RSS while ingesting.
# Also times a bare multipart upload of the same bytes (no ingest) to show what s3rver's multipart
# costs by itself. Usage: bash bench/ingest-bench.sh [BYTES] (default 1 GiB). Figures: bench/INGEST-RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1073741824}
part=${PART_SIZE:-8388608}
bash scripts/setup.sh
dotnet build operator -c Release -nologo -v q >/dev/null
dotnet build bench/IngestBench -c Release -nologo -v q >/dev/null
work=bench/work/ingest
rm -rf "$work" && mkdir -p "$work/s3"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
s3_port=$(free_port) http_port=$(free_port) ingest_port=$(free_port)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

.tools/s3rver/node_modules/.bin/s3rver -d "$work/s3" -a 127.0.0.1 -p "$s3_port" --silent --configure-bucket kubecapture >"$work/s3rver.log" 2>&1 &
pids+=($!)
bench=(dotnet exec bench/IngestBench/bin/Release/net10.0/IngestBench.dll)
"${bench[@]}" write "$work/blob" "$size"
until curl -s -o /dev/null "http://127.0.0.1:$s3_port/"; do sleep 0.1; done

now() { date +%s.%N; }
t0=$(now)
code=$(curl -s -o /dev/null -w '%{http_code}' -T "$work/blob" "http://127.0.0.1:$s3_port/kubecapture/plain/blob")
t1=$(now)
[[ $code == 200 ]] || { echo "plain PUT failed: HTTP $code"; exit 1; }
put_s=$(echo "$t1 - $t0" | bc -l)

multipart_s=$(python3 - "$work/blob" "http://127.0.0.1:$s3_port/kubecapture/multipart/blob" "$part" <<'PY'
import re, sys, time, urllib.request
path, url, part = sys.argv[1], sys.argv[2], int(sys.argv[3])
start = time.time()
upload = re.search(rb"<UploadId>(.*?)</UploadId>", urllib.request.urlopen(urllib.request.Request(url + "?uploads", method="POST", data=b"")).read()).group(1).decode()
etags = []
with open(path, "rb") as f:
    while chunk := f.read(part):
        r = urllib.request.urlopen(urllib.request.Request(f"{url}?partNumber={len(etags) + 1}&uploadId={upload}", method="PUT", data=chunk))
        etags.append(r.headers["ETag"])
body = "<CompleteMultipartUpload>" + "".join(f"<Part><PartNumber>{i + 1}</PartNumber><ETag>{e}</ETag></Part>" for i, e in enumerate(etags)) + "</CompleteMultipartUpload>"
urllib.request.urlopen(urllib.request.Request(f"{url}?uploadId={upload}", method="POST", data=body.encode())).read()
print(f"{time.time() - start:.3f}")
PY
)

dotnet exec operator/bin/Release/net10.0/kubecapture-operator.dll \
  "--Kestrel:Endpoints:Http:Url=http://127.0.0.1:$http_port" "--Kestrel:Endpoints:Ingest:Url=http://127.0.0.1:$ingest_port" \
  "--Storage:S3:Endpoint=http://127.0.0.1:$s3_port" --Storage:S3:AccessKey=S3RVER --Storage:S3:SecretKey=S3RVER \
  "--Storage:PartSize=$part" --Ingest:TokenSecret=bench --Logging:LogLevel:Default=Warning >"$work/operator.log" 2>&1 &
operator=$!
pids+=($operator)
until curl -s -o /dev/null "http://127.0.0.1:$http_port/healthz"; do sleep 0.1; done
idle_kib=$(awk '/VmHWM/ {print $2}' "/proc/$operator/status")
read -r ingest_s sent_s uri sha < <("${bench[@]}" upload "http://127.0.0.1:$ingest_port" bench "$size")
peak_kib=$(awk '/VmHWM/ {print $2}' "/proc/$operator/status")
expected=$(sha256sum "$work/blob" | cut -d' ' -f1)
stored=$(sha256sum "$work/s3/kubecapture/${uri#s3://kubecapture/}._S3rver_object" | cut -d' ' -f1)
[[ $sha == "$expected" && $stored == "$expected" ]] || { echo "SHA-256 mismatch: sent $sha, expected $expected, stored $stored"; exit 1; }

mib=$(echo "$size / 1048576" | bc -l)
printf 'bytes                      %d (%.0f MiB), part size %d\n' "$size" "$mib" "$part"
printf 'plain PUT (curl -T)        %7.2f s  %7.1f MiB/s\n' "$put_s" "$(echo "$mib / $put_s" | bc -l)"
printf 'bare multipart (python)    %7.2f s  %7.1f MiB/s\n' "$multipart_s" "$(echo "$mib / $multipart_s" | bc -l)"
printf 'ingest (gRPC -> s3rver)    %7.2f s  %7.1f MiB/s  (all bytes sent after %.2f s)\n' "$ingest_s" "$(echo "$mib / $ingest_s" | bc -l)" "$sent_s"
printf 'ratio ingest / plain PUT   %7.2f\n' "$(echo "$put_s / $ingest_s" | bc -l)"
printf 'ratio ingest / multipart   %7.2f\n' "$(echo "$multipart_s / $ingest_s" | bc -l)"
printf 'operator peak RSS          %7.1f MiB (idle after start %.1f MiB)\n' "$(echo "$peak_kib / 1024" | bc -l)" "$(echo "$idle_kib / 1024" | bc -l)"
echo "SHA-256 verified: $sha"
