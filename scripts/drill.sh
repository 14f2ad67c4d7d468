#!/usr/bin/env bash
# The drill from the tcpdump field guide, with the KubeCapture agent doing the capture:
# a throwaway HTTP server in one network namespace ("pod"), a client in another, one request,
# one connection to a port where nothing listens, a capture with a port filter and a packet
# ceiling, then the pcap read back with tcpdump -nn -r and the agent's summary.
# Everything stays on this machine: link-local 169.254.77.0/30 and fd77::/64 on a veth pair.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
dotnet build capture-sidecar -c Release -v quiet -nologo >/dev/null
agent="$PWD/capture-sidecar/bin/Release/net10.0/kubecapture-agent"

srv=kc-drill-srv cli=kc-drill-cli
out=$(mktemp -d /tmp/kubecapture-drill.XXXXXX)
cleanup() {
  [[ -n "${server_pid:-}" ]] && kill "$server_pid" 2>/dev/null || true
  ip netns del "$srv" 2>/dev/null || true
  ip netns del "$cli" 2>/dev/null || true
}
trap cleanup EXIT
cleanup
ip netns add "$srv"; ip netns add "$cli"
ip link add kc-drill0 netns "$srv" type veth peer name kc-drill1 netns "$cli"
ip -n "$srv" addr add 169.254.77.1/30 dev kc-drill0; ip -n "$srv" addr add fd77::1/64 dev kc-drill0 nodad
ip -n "$cli" addr add 169.254.77.2/30 dev kc-drill1; ip -n "$cli" addr add fd77::2/64 dev kc-drill1 nodad
for ns in "$srv" "$cli"; do ip -n "$ns" link set lo up; done
ip -n "$srv" link set kc-drill0 up; ip -n "$cli" link set kc-drill1 up

echo "== step 1: a throwaway web server in the 'server pod', and a capture beside it"
ip netns exec "$srv" python3 -m http.server 8000 --bind :: --directory "$out" >/dev/null 2>&1 &
server_pid=$!
for _ in $(seq 100); do ip netns exec "$cli" curl -s -o /dev/null http://169.254.77.1:8000/ && break; sleep 0.1; done
ip netns exec "$srv" "$agent" capture -i any -c 200 --duration 30s -w "$out/drill.pcap" \
  'tcp port 8000 or tcp port 8001' >"$out/summary.txt" 2>"$out/agent.err" &
agent_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$out/agent.err" && break; sleep 0.1; done
cat "$out/agent.err"

echo "== step 2: one request (the handshake, the GET, the teardown)"
ip netns exec "$cli" curl -s -o /dev/null -w 'HTTP %{http_code} from %{remote_ip}:%{remote_port}\n' http://169.254.77.1:8000/
echo "== step 3: a refusal (nothing listens on 8001)"
ip netns exec "$cli" curl -s -o /dev/null http://169.254.77.1:8001/ || echo "curl: connection refused, as expected"
echo "== step 4: stop the capture (SIGTERM, as kubectl delete would; Ctrl-C works the same in a terminal)"
sleep 0.5
kill -TERM "$agent_pid" 2>/dev/null || true
wait "$agent_pid" || true
echo
echo "== the pcap, read back by tcpdump -nn -r"
tcpdump -nn -r "$out/drill.pcap" 2>/dev/null
echo
echo "== the agent's report"
cat "$out/summary.txt"
echo
echo "files: $out/drill.pcap and its manifest $out/drill.pcap.json"
