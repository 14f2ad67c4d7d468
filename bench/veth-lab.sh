# The lab the capture benches share (capture-bench.sh, recorder-bench.sh), sourced from the repository's
# root with lab_prefix set (kcB, kcR): the packages, a work directory removed on exit, the agent as
# users run it in $agent, and two network namespaces $tx and $rx joined by a veth pair $txif-$rxif.
[[ -n ${KCB_PREPARED:-} ]] || bash scripts/setup.sh >/dev/null      # libpcap, tcpdump, tshark (capinfos), tcpreplay, iproute2, python3
# NativeAOT publishing links with a C toolchain; GNU time measures CPU and peak RSS.
missing=""
for p in gcc libc6-dev zlib1g-dev time openssl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=" $p"
done
if [[ -n "$missing" ]]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

tx="$lab_prefix-tx-$$" rx="$lab_prefix-rx-$$" txif="${lab_prefix}t$$" rxif="${lab_prefix}r$$"
work=$(mktemp -d "/tmp/$lab_prefix-bench.XXXXXX")
cleanup() {
  ip netns del "$tx" 2>/dev/null || true
  ip netns del "$rx" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The agent as users run it: published exactly as the Dockerfile does (NativeAOT, see the csproj),
# unless KCB_AGENT names a binary to measure instead.
if [[ -z ${KCB_AGENT:-} ]]; then
  echo "bench: publishing the agent (dotnet publish capture-sidecar -c Release)"
  # MSBuild writes its errors to stdout: shown when publishing fails, not thrown away with the rest.
  if ! dotnet publish capture-sidecar -c Release -o "$work/agent" -v quiet -nologo >"$work/publish.log" 2>&1; then
    echo "bench: publishing the agent failed:" >&2; cat "$work/publish.log" >&2; exit 1
  fi
fi
agent="${KCB_AGENT:-$work/agent/kubecapture-agent}"

ip netns add "$tx"; ip netns add "$rx"
ip link add "$txif" netns "$tx" type veth peer name "$rxif" netns "$rx"
for pair in "$tx:$txif" "$rx:$rxif"; do
  ns=${pair%%:*} dev=${pair#*:}
  # No IPv6 on the link: no router solicitations or MLD reports mixed into the counts.
  ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$dev.disable_ipv6=1"
  ip -n "$ns" link set "$dev" up
done
