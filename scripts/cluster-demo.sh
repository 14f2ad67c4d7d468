#!/usr/bin/env bash
# KubeCapture's real job, end to end, on a throwaway one-node Kubernetes cluster on this machine:
#   1. a node (kubelet, containerd, CNI, kube-proxy, scheduler, controller-manager, DNS, beside
#      kube-apiserver: tests/KubeCapture.RealNode, the same program the tests run) with the two
#      images of scripts/images.sh loaded;
#   2. the chart installed with helm as docs/install.md says (local images, storage.local.emptyDir);
#   3. a web Deployment and a client pod, a PacketCapture applied with kubectl, traffic, its findings;
#   4. the pcap downloaded with `kubectl capture download`, read with `tcpdump -nn -r`, and its signed
#      manifest verified with `kubectl capture verify`;
#   5. everything torn down: the node undoes every change it made to this machine.
# Needs root and a fresh Debian with the .NET SDK, with ../shared/ (envtest, realnode) beside the
# repository. Installs what is missing (scripts/setup.sh, scripts/images.sh). KEEP=1 leaves the
# work directory (logs, the pcap) in /tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
started=$SECONDS
say() { printf '\n== %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
fail() { echo "cluster-demo: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || fail "needs root (a node makes network links, mounts and cgroups)"

say "setup: packages, tools and the Kubernetes binaries (scripts/setup.sh)"
bash scripts/setup.sh
[[ -x .tools/realnode/kubelet ]] || fail "no kubelet in .tools/realnode: ../shared/realnode must be beside the repository"
say "build: the node program and the kubectl plugin"
dotnet build tests/KubeCapture.RealNode/KubeCapture.RealNode.csproj -c Release -nologo -v quiet
dotnet build kubectl-capture/KubeCapture.KubectlPlugin.csproj -c Release -nologo -v quiet
say "images: the agent and the operator (scripts/images.sh)"
bash scripts/images.sh
version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' charts/kubecapture/Chart.yaml)
prepared=$SECONDS

work=$(mktemp -d /tmp/kubecapture-demo-XXXXXX)
export PATH=$root/.tools/bin:$root/kubectl-capture/bin/Release/net10.0:$PATH   # kubectl, helm, kubectl-capture
export HOME=$work/home                                                          # helm's and kubectl's caches
node_pid=
stop_node() {
  [[ -n "$node_pid" ]] || return 0
  say "teardown: stopping the node (it undoes every change it made to this machine)"
  kill -TERM "$node_pid" 2>/dev/null || true
  wait "$node_pid" && status=0 || status=$?
  node_pid=
  tail -3 "$work/node.log"
  [[ $status == 0 ]] || { echo "cluster-demo: the node did not stop cleanly (exit $status); see $work/node.log" >&2; return 1; }
}
finish() {
  local status=$?
  stop_node || status=1
  if [[ $status == 0 && -z "${KEEP:-}" ]]; then rm -rf "$work"; else echo "cluster-demo: work directory kept: $work"; fi
  exit $status
}
trap finish EXIT
trap 'exit 130' INT TERM

say "node: a one-node cluster on this machine (node IP 198.19.254.1, nothing leaves the machine)"
dotnet exec tests/KubeCapture.RealNode/bin/Release/net10.0/kubecapture-node.dll run --state "$work/node" \
  --image "dist/kubecapture-agent-$version.oci.tar" --image "dist/kubecapture-operator-$version.oci.tar" >"$work/node.log" 2>&1 &
node_pid=$!
until [[ -f "$work/node/state.json" ]]; do
  kill -0 "$node_pid" 2>/dev/null || { node_pid=; cat "$work/node.log" >&2; fail "the node did not start"; }
  sleep 1
done
grep 'kubecapture-node: ' "$work/node.log" | grep -v teardown | sed 's/^/  /'
export KUBECONFIG=$work/node/admin.kubeconfig
run kubectl get nodes -o wide

say "install: the chart, as docs/install.md says for a cluster without a registry (images loaded into the node)"
run helm install kubecapture charts/kubecapture -n kubecapture-system --create-namespace \
  --set image.repository=localhost/kubecapture/operator --set image.pullPolicy=Never \
  --set agent.image.repository=localhost/kubecapture/agent --set storage.local.emptyDir=true --wait --timeout 5m
run kubectl wait --for=condition=Available apiservice/v1alpha1.subresources.kubecapture.io --timeout=120s
run kubectl -n kubecapture-system get pods -o wide

say "workload: a web Deployment (busybox httpd on 8080, Service web:80) and a client pod"
kubectl create namespace shop
kubectl apply -n shop -f - <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: kubecapture.local/busybox:1.35
        imagePullPolicy: Never
        command: [sh, -c, "echo hello from web > /tmp/index.html && exec httpd -f -p 8080 -h /tmp"]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: client, image: kubecapture.local/busybox:1.35, imagePullPolicy: Never, command: [sleep, "3600"]}
EOF
kubectl -n shop wait --for=condition=Available deployment/web --timeout=120s
kubectl -n shop wait --for=condition=Ready pod/client --timeout=120s
web=$(kubectl -n shop get pods -l app=web -o jsonpath='{.items[0].metadata.name}')
web_ip=$(kubectl -n shop get pod "$web" -o jsonpath='{.status.podIP}')
run kubectl -n shop get pods -o wide

say "capture: kubectl apply of a PacketCapture of the web pod"
kubectl apply -f - <<EOF
apiVersion: kubecapture.io/v1alpha1
kind: PacketCapture
metadata: {name: web-requests, namespace: shop}
spec:
  reason: "clients say some calls to web fail (cluster-demo)"
  target: {podName: $web}
  filter: "tcp"
  duration: 5m
EOF
run kubectl -n shop wait --for=jsonpath='{.status.phase}'=Running pcap/web-requests --timeout=120s
container=kubecapture-$(kubectl -n shop get pcap web-requests -o jsonpath='{.metadata.uid}')
until kubectl -n shop logs "$web" -c "$container" 2>/dev/null | grep -q 'listening on'; do sleep 1; done
kubectl -n shop logs "$web" -c "$container" | sed 's/^/  agent: /'

say "traffic: three requests to http://web, and one connection to a port where nothing listens"
for i in 1 2 3; do kubectl -n shop exec client -- sh -c 'printf "GET / HTTP/1.0\r\n\r\n" | nc -w 5 web 80' | tail -1; done
kubectl -n shop exec client -- nc -w 2 "$web_ip" 9090 </dev/null && fail "port 9090 answered" || echo "connection to $web_ip:9090 refused, as expected"
run kubectl capture -n shop stop web-requests
run kubectl -n shop wait --for=jsonpath='{.status.phase}'=Succeeded pcap/web-requests --timeout=120s
run kubectl -n shop get pcap -o wide
run kubectl capture -n shop status web-requests

say "evidence: the pcap through the Kubernetes API, read by tcpdump, its signed manifest verified"
cd "$work"
run kubectl capture -n shop download web-requests -o web-requests.pcap
run tcpdump -nn -r web-requests.pcap
kubectl -n kubecapture-system get configmap kubecapture-manifest-signing -o jsonpath='{.data.public-key\.pem}' >operator.pub
run kubectl capture verify web-requests.pcap --public-key operator.pub
syns=$(tcpdump -nn -r web-requests.pcap "tcp[tcpflags] == tcp-syn and dst host $web_ip" 2>/dev/null | wc -l)
[[ $syns == 4 ]] || fail "expected 4 SYNs to the web pod in the pcap, found $syns"
refused=$(kubectl -n shop get pcap web-requests -o jsonpath='{.status.findings[*].type}')
[[ $refused == *ConnectionRefused* ]] || fail "expected a ConnectionRefused finding, found: $refused"
kubectl -n kubecapture-system logs deploy/kubecapture >"$work/operator.log"
cd "$root"

stop_node
echo
echo "cluster-demo: done in $((SECONDS - started)) s ($((prepared - started)) s of setup, build and images; $((SECONDS - prepared)) s for the node, the install, the capture and the teardown)"
