#!/usr/bin/env bash
# Flight recorder benchmark (issue 24): the same traffic offered to `tcpdump -w`, to `kubecapture-agent
# capture -w` and to `kubecapture-agent record` (a 64 MiB ring, a 10 min window so that the ring's size
# bounds it, the filter trigger 'tcp[tcpflags] & tcp-rst != 0' 20/10s evaluated on every packet; the
# traffic has no RST, so no snapshot is written: the steady state). Then `record` alone over ~10 MB and
# ~1 GB of traffic: its peak RSS is the ring (filled as traffic comes) plus a constant, flat however
# much goes through it.
#
# Same lab as capture-bench.sh: two network namespaces, tcpreplay -K --topspeed of generated 60-byte
# frames into one end, the capture on the other; CPU seconds and peak RSS from GNU time.
# CI runs it briefly (bench/smoke.sh). Needs root. Usage:
#   bash bench/recorder-bench.sh [--frames N] [--repeats R] [--no-big]
# Defaults: 2,000,000 frames per run, 3 repeats, with the 10 MB / 1 GB runs. "agent" is the published
# executable (NativeAOT, as the Dockerfile builds it); KCB_AGENT=/path/to/kubecapture-agent overrides it.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

frames=2000000 repeats=3 big=1 ingest=1
while (($#)); do
  case "$1" in
    --frames) frames=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --no-big) big=0; shift ;;
    --no-ingest) ingest=0; shift ;;
    *) echo "usage: $0 [--frames N] [--repeats R] [--no-big] [--no-ingest]" >&2; exit 2 ;;
  esac
done

lab_prefix=kcR
source bench/veth-lab.sh
helper="$repo/bench/capture_bench.py"

base=1000 frame=60 ring=$((64 << 20))
python3 "$helper" gen "$work/traffic.pcap" "$base" tcp
loops=$(((frames + base - 1) / base))
echo "bench: $((loops * base)) frames of $frame bytes (tcp) per run, $repeats runs per tool; record: a $((ring >> 20)) MiB ring"
echo "bench: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, kernel $(uname -r), $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"

results="$work/results.jsonl"
mkdir -p "$work/snapshots"
run() { # label, loops, command...
  local label=$1 n=$2; shift 2
  rm -f "$work/out.pcap" "$work/out.pcap.json"
  python3 "$helper" run "$label" "$tx" "$txif" "$work/traffic.pcap" "$n" "$work/out.pcap" -- ip netns exec "$rx" "$@" | tee -a "$results"
}
record() { # label, loops
  run "$1" "$2" "$agent" record -i "$rxif" -s 128 -B 8192 --max-bytes "$ring" --window 10m --duration 30m \
    --snapshot-dir "$work/snapshots" --trigger-filter 'tcp[tcpflags] & tcp-rst != 0' --trigger-count 20/10s
}

for ((r = 1; r <= repeats; r++)); do
  run tcpdump "$loops" tcpdump -i "$rxif" -s 128 -B 8192 -w "$work/out.pcap"
  run capture "$loops" "$agent" capture -i "$rxif" -s 128 -B 8192 --max-bytes 4GiB --duration 10m -w "$work/out.pcap"
  record record "$loops"
done

if ((big)); then
  record "record 10MB" $(((10 * 1000 * 1000 / frame + base - 1) / base))
  record "record 1GB" $(((1000 * 1000 * 1000 / frame + base - 1) / base))
fi
if [[ -n "$(ls -A "$work/snapshots")" ]]; then
  echo "bench: a trigger fired on traffic without a RST: $(ls "$work/snapshots")" >&2
  exit 1
fi

if ((ingest)); then
  # Cluster mode: `record --ingest`, a trigger on the first packet (`tcp`, 1/1s; the 10 min cooldown allows no
  # second), `--after` longer than the run: the snapshot streams to the ingest while the traffic goes on, so
  # the agent holds the ring and the snapshot's unacknowledged share at once, the worst case of its memory.
  # With enough traffic the snapshot is cut at twice the ring ("ended": "max-bytes"); else SIGTERM ends it.
  # The ingest is an operator with no reconciler (plain h2c, as bench/ingest-bench.sh runs it) over s3rver,
  # both in the agent's namespace (loopback), so only the capture interface carries the replayed traffic.
  echo "bench: record --ingest: building the operator and bench/IngestBench"
  dotnet build operator -c Release -nologo -v q >/dev/null
  dotnet build bench/IngestBench -c Release -nologo -v q >/dev/null
  ip -n "$rx" link set lo up
  ip netns exec "$rx" "$repo/.tools/s3rver/node_modules/.bin/s3rver" -d "$work/s3" -a 127.0.0.1 -p 9000 --silent --configure-bucket kubecapture >"$work/s3rver.log" 2>&1 &
  s3rver_pid=$!
  ip netns exec "$rx" dotnet exec operator/bin/Release/net10.0/kubecapture-operator.dll \
    --Kestrel:Endpoints:Http:Url=http://127.0.0.1:8080 --Kestrel:Endpoints:Ingest:Url=http://127.0.0.1:8081 \
    --Storage:S3:Endpoint=http://127.0.0.1:9000 --Storage:S3:Bucket=kubecapture --Storage:S3:AccessKey=S3RVER --Storage:S3:SecretKey=S3RVER \
    --Reconciler:Enabled=false --Ingest:TokenSecret=bench --Ingest:Tls=false --Ingest:BindToPodAddress=false \
    --Logging:LogLevel:Default=Warning >"$work/operator.log" 2>&1 &
  operator_pid=$!
  stop_ingest() { kill "$operator_pid" "$s3rver_pid" 2>/dev/null || true; wait "$operator_pid" "$s3rver_pid" 2>/dev/null || true; }
  trap 'stop_ingest; cleanup' EXIT
  for url in http://127.0.0.1:9000/ http://127.0.0.1:8080/healthz; do
    for ((i = 0; i < 600; i++)); do ip netns exec "$rx" curl -s -o /dev/null "$url" && break; sleep 0.1; done
  done
  token=$(dotnet exec bench/IngestBench/bin/Release/net10.0/IngestBench.dll token bench bench-uid bench recorder rx)
  ingest_loops=$loops
  ((big)) && ingest_loops=$(((1000 * 1000 * 1000 / frame + base - 1) / base))
  run "record --ingest" "$ingest_loops" "$agent" record -i "$rxif" -s 128 -B 8192 --max-bytes "$ring" --window 10m --after 30m --duration 30m \
    --trigger-filter tcp --trigger-count 1/1s --ingest http://127.0.0.1:8081 --token "$token" \
    --capture-uid bench-uid --capture-namespace bench --capture-name recorder --pod rx
  stored=$(find "$work/s3" -path '*rx_snapshot-1.pcap*' -name '*._S3rver_object' | head -1)
  [[ -n $stored ]] || { echo "bench: record --ingest stored no snapshot (operator log: $(tail -5 "$work/operator.log"))" >&2; exit 1; }
  stored_sha=$(sha256sum "$stored" | cut -d' ' -f1)
  grep -q "\"sha256\": \"$stored_sha\"" "$results" || { echo "bench: the stored snapshot's SHA-256 $stored_sha is not the agent's" >&2; exit 1; }
  stop_ingest
fi

echo "bench: done, load average $(cut -d' ' -f1-3 /proc/loadavg) (other processes on this machine skew the CPU figures)"
python3 - "$results" "$ring" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ring = int(sys.argv[2])
print()
print(f"{'tool':<17}{'offered':>10}{'seen':>10}{'dropped':>9}{'kpps':>7}{'CPU s':>8}{'ns/pkt':>8}{'peak RSS MiB':>14}")
for r in rows:
    ns = r['cpu'] / r['captured'] * 1e9 if r['captured'] else 0
    print(f"{r['tool']:<17}{r['offered']:>10}{r['captured']:>10}{r['dropped'] if r['dropped'] is not None else '?':>9}"
          f"{(r['pps'] or 0)/1000:>7.0f}{r['cpu']:>8.2f}{ns:>8.0f}{r['peak_rss_kib']/1024:>14.1f}")
def med(tool, key):
    v = [r[key] for r in rows if r["tool"] == tool]
    return statistics.median(v) if v else None
t, c, rec = med("tcpdump", "cpu"), med("capture", "cpu"), med("record", "cpu")
print()
if t:
    print(f"median CPU: tcpdump {t:.2f} s, capture {c:.2f} s ({c/t:.2f}x), record {rec:.2f} s ({rec/t:.2f}x; target <= 1.2x)")
else:
    print(f"median CPU: tcpdump {t:.2f} s, capture {c:.2f} s, record {rec:.2f} s (no ratio: tcpdump's CPU time rounds to 0, too few frames)")
for r in rows:
    if r["tool"] == "record --ingest":
        snap = (r.get("snapshots") or [None])[0]
        stated = 2 * ring + (32 << 20) + (48 << 20)  # ClusterRecording.ConstantOverheadMiB
        print(f"record --ingest peak RSS: {r['peak_rss_kib']/1024:.1f} MiB with its snapshot uploading"
              + (f" (snapshot {snap['snapshot']}: {snap['bytes']/2**20:.1f} MiB, {snap['packets']} packets, ended {snap['ended']})" if snap else " (no snapshot)")
              + f"; stated bound: the ring, the snapshot's unacknowledged share (at most the ring and 32 MiB) and 48 MiB = {stated >> 20} MiB")
small, large = med("record 10MB", "peak_rss_kib"), med("record 1GB", "peak_rss_kib")
if small and large:
    print(f"record peak RSS over 10 MB of traffic: {small/1024:.1f} MiB, over 1 GB: {large/1024:.1f} MiB; "
          f"the ring is {ring >> 20} MiB: over 1 GB the agent holds the ring plus {(large*1024 - ring)/2**20:.1f} MiB")
PY
