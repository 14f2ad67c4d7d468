#!/usr/bin/env bash
# Aggregate ingest throughput with 1 and 2 operator replicas and N captures streaming at once (issue 23
# item 7; CI runs it briefly: bench/smoke.sh). Each replica is an operator process of its own (the
# Release build, Kestrel h2c on 127.0.0.1, reconciler off), all storing into one Ceph RGW (the tests'
# CephRgwFixture) with the same token key. The agents (bench/IngestBench, the agent's protocol, 60 KiB
# chunks, each capture its own connection) are split between the replicas' addresses directly, capture i
# to replica i mod R: an even split, as a Service's per-connection balancing gives on average, without
# measuring which way its dice fell for 4 streams (kube-proxy's DNAT costs per connection, not per byte).
# Each replica count gets a fresh RGW and fresh operators, warmed up until their JIT is done
# (OperatorWarmUp), then one run per N sends TOTAL bytes in all (TOTAL / N per capture), the runs in
# the order of COUNTS. Printed per run: the time until every capture is stored, the aggregate
# throughput, and the CPU seconds over that interval of each operator, of the agents (one process) and
# of the S3 server. Figures: bench/INGEST-RESULTS.md.
# Usage: bash bench/ingest-replicas-bench.sh [TOTAL] [COUNTS] (default 512 MiB, "1 4 8")
set -euo pipefail
cd "$(dirname "$0")/.."
total=${1:-536870912}
counts=${2:-1 4 8}
if [[ -z ${KCB_PREPARED:-} ]]; then # set: installed and built already (bench/smoke.sh after scripts/test.sh)
  bash scripts/setup.sh
  dotnet build operator -c Release -nologo -v q >/dev/null
  dotnet build bench/IngestBench -c Release -nologo -v q >/dev/null
fi
work=bench/work/ingest-replicas
rm -rf "$work" && mkdir -p "$work"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
bench=(dotnet exec bench/IngestBench/bin/Release/net10.0/IngestBench.dll)
server_pid="" operators=()
stop_all() {
  local p
  for p in "${operators[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${operators[@]}"; do wait "$p" 2>/dev/null || true; rm -f "/tmp/perf-$p.map"; done
  operators=()
  if [[ -n $server_pid ]]; then
    exec 3>&- # serve-rgw stops Ceph when its stdin closes
    while kill -0 "$server_pid" 2>/dev/null; do sleep 0.1; done
    server_pid=""
  fi
}
trap stop_all EXIT

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
results=()
for replicas in 1 2; do
  dir=$work/replicas-$replicas
  mkdir -p "$dir"
  exec 3> >(exec "${bench[@]}" serve-rgw "$dir/rgw.env" >"$dir/rgw.log" 2>&1)
  server_pid=$!
  until [[ -s $dir/rgw.env ]]; do sleep 0.1; done
  read -r endpoint bucket access secret ceph_dir <"$dir/rgw.env"
  server_pids=$(awk 1 "$ceph_dir"/*.daemon-pid | paste -sd,)
  urls=()
  for ((r = 0; r < replicas; r++)); do
    http_port=$(free_port) ingest_port=$(free_port)
    DOTNET_PerfMapEnabled=3 dotnet exec operator/bin/Release/net10.0/kubecapture-operator.dll \
      "--Kestrel:Endpoints:Http:Url=http://127.0.0.1:$http_port" "--Kestrel:Endpoints:Ingest:Url=http://127.0.0.1:$ingest_port" \
      "--Storage:S3:Endpoint=$endpoint" "--Storage:S3:Bucket=$bucket" "--Storage:S3:AccessKey=$access" "--Storage:S3:SecretKey=$secret" \
      --Reconciler:Enabled=false --Ingest:TokenSecret=bench --Ingest:Tls=false --Ingest:BindToPodAddress=false \
      --Logging:LogLevel:Default=Warning >"$dir/operator-$r.log" 2>&1 &
    operators+=($!)
    until curl -s -o /dev/null "http://127.0.0.1:$http_port/healthz"; do sleep 0.1; done
    urls+=("http://127.0.0.1:$ingest_port")
  done
  warm_up=$((total < (64 << 20) ? total : (64 << 20)))
  for n in $counts; do
    "${bench[@]}" fleet "$(IFS=,; echo "${urls[*]}")" bench $((total / n)) "$n" "$(IFS=,; echo "${operators[*]}")" "$server_pids" "$warm_up" \
      >"$dir/fleet-$n.out" 2>"$dir/fleet-$n.log" || { cat "$dir/fleet-$n.log"; echo "$replicas replica(s), $n captures: the run failed (logs in $dir)"; exit 1; }
    warm_up=0 # warm from here on
    read -r seconds operator_cpu client_cpu server_cpu <"$dir/fleet-$n.out"
    results+=("$replicas $n $seconds $operator_cpu $client_cpu $server_cpu")
  done
  stop_all
done

mib=$(echo "$total / 1048576" | bc -l) gib=$(echo "$total / 1073741824" | bc -l)
printf '%d MiB in all per run (TOTAL / N per capture); %d cores; load average %s at the start, %s at the end\n' \
  "$(echo "$mib / 1" | bc)" "$(nproc)" "$load_start" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %-9s %8s %8s   CPU s per GiB sent: %-26s %7s %10s\n' replicas captures seconds "MiB/s" "operators (sum: each)" agents "S3 server"
for line in "${results[@]}"; do
  read -r replicas n seconds operator_cpu client_cpu server_cpu <<<"$line"
  sum=$(echo "(${operator_cpu//,/+}) / $gib" | bc -l)
  each=$(tr , '\n' <<<"$operator_cpu" | while read -r c; do printf '%.2f ' "$(echo "$c / $gib" | bc -l)"; done)
  printf '%-8s %-9s %8.2f %8.1f   %19s %5.2f: %-19s %7.2f %10.2f\n' "$replicas" "$n" "$seconds" "$(echo "$mib / $seconds" | bc -l)" "" "$sum" "$each" \
    "$(echo "$client_cpu / $gib" | bc -l)" "$(echo "$server_cpu / $gib" | bc -l)"
done
