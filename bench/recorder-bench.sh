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

frames=2000000 repeats=3 big=1
while (($#)); do
  case "$1" in
    --frames) frames=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --no-big) big=0; shift ;;
    *) echo "usage: $0 [--frames N] [--repeats R] [--no-big]" >&2; exit 2 ;;
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

echo "bench: done, load average $(cut -d' ' -f1-3 /proc/loadavg) (other processes on this machine skew the CPU figures)"
python3 - "$results" "$ring" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ring = int(sys.argv[2])
print()
print(f"{'tool':<13}{'offered':>10}{'seen':>10}{'dropped':>9}{'kpps':>7}{'CPU s':>8}{'ns/pkt':>8}{'peak RSS MiB':>14}")
for r in rows:
    ns = r['cpu'] / r['captured'] * 1e9 if r['captured'] else 0
    print(f"{r['tool']:<13}{r['offered']:>10}{r['captured']:>10}{r['dropped'] if r['dropped'] is not None else '?':>9}"
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
small, large = med("record 10MB", "peak_rss_kib"), med("record 1GB", "peak_rss_kib")
if small and large:
    print(f"record peak RSS over 10 MB of traffic: {small/1024:.1f} MiB, over 1 GB: {large/1024:.1f} MiB; "
          f"the ring is {ring >> 20} MiB: over 1 GB the agent holds the ring plus {(large*1024 - ring)/2**20:.1f} MiB")
PY
