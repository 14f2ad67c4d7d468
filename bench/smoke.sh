#!/usr/bin/env bash
# Every benchmark, briefly: CI runs this (scripts/test.sh) so that no bench can rot unseen. Each bench
# runs with small sizes and prints its figures as usual; a bench that fails to build, run, or verify
# what it measured fails this script. The figures of a smoke run are not results (sizes far too small,
# the machine busy with the tests): bench/*RESULTS.md hold the real runs, made with each bench's own
# defaults. Needs root (network namespaces, Ceph). Expects scripts/setup.sh run and the solution built
# (-c Release), as scripts/test.sh leaves them: no bench installs or builds anything again
# (KCB_PREPARED=1). About 2-3 minutes on 2 cores (the two ingest benches start Ceph three and two
# times; their operators are warmed up with one round only: KCB_WARM_UP_MAX_ROUNDS=1).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
step() { printf '\nbench smoke: %s\n' "$*"; }
took() { printf 'bench smoke: %s took %ss\n' "$1" $((SECONDS - $2)); }
bin=bin/Release/net10.0
export KCB_PREPARED=1 # without it: four setup.sh runs and five no-op `dotnet build`s

t=$SECONDS; step "capture-bench.sh: agent (JIT build) versus tcpdump, 20,000 TCP frames, one run each"
KCB_AGENT=$PWD/capture-sidecar/$bin/kubecapture-agent bash bench/capture-bench.sh --frames 20000 --repeats 1 --mix tcp --no-big
took capture-bench $t

t=$SECONDS; step "recorder-bench.sh: record (JIT build) versus capture and tcpdump, 20,000 TCP frames, one run each"
KCB_AGENT=$PWD/capture-sidecar/$bin/kubecapture-agent bash bench/recorder-bench.sh --frames 20000 --repeats 1 --no-big
took recorder-bench $t

t=$SECONDS; step "SummaryBench: the TCP summary alone, 200,000 frames, 2 passes"
work=$(mktemp -d /tmp/kcB-smoke.XXXXXX)
trap 'rm -rf "$work"' EXIT
python3 bench/capture_bench.py gen "$work/tcp.pcap" 200000 tcp  # as many frames as it feeds: no replay
dotnet exec bench/SummaryBench/$bin/SummaryBench.dll "$work/tcp.pcap" 200000 2
took SummaryBench $t

t=$SECONDS; step "OperatorBench: 40 captures in 4 namespaces against the API emulator"
dotnet exec bench/OperatorBench/$bin/OperatorBench.dll 40 4 4
took OperatorBench $t

t=$SECONDS; step "ApiServerBench: 2 x 5 pods on the real kube-apiserver, 3 s idle window"
KCB_IDLE_SECONDS=3 dotnet exec bench/ApiServerBench/$bin/ApiServerBench.dll 2 5
took ApiServerBench $t

t=$SECONDS; step "ingest-bench.sh: 16 MiB through the ingest versus a plain PUT, on Ceph RGW"
KCB_WARM_UP_MAX_ROUNDS=1 bash bench/ingest-bench.sh $((16 << 20))
took ingest-bench $t

t=$SECONDS; step "ingest-replicas-bench.sh: 1 and 2 operator replicas, 4 captures at once, 16 MiB in all, on Ceph RGW"
KCB_WARM_UP_MAX_ROUNDS=1 bash bench/ingest-replicas-bench.sh $((16 << 20)) 4
took ingest-replicas-bench $t

printf '\nbench smoke: every bench ran, in %ss (figures of a smoke run are not results: see bench/*RESULTS.md)\n' $((SECONDS - started))
