#!/usr/bin/env bash
# Usage: bash scripts/release.sh VERSION        (as root: the images are built with podman)
#
# Produces in dist/ everything a release ships, and a checksums file over it:
#   kubecapture-agent-VERSION.oci.tar      the agent image (OCI archive), tag kubecapture/agent:VERSION
#   kubecapture-operator-VERSION.oci.tar   the operator image (OCI archive), tag kubecapture/operator:VERSION
#   kubecapture-VERSION.tgz                the Helm chart (helm package)
#   kubectl-capture-VERSION-linux-amd64.tar.gz  the kubectl plugin, and capture.yaml its krew manifest
#                                          (scripts/plugin-release.sh; KUBECAPTURE_RELEASE_URL: where it is published)
#   kubecapture-VERSION.sha256             SHA-256 of each of them (sha256sum -c kubecapture-VERSION.sha256)
#
# VERSION must be the chart's version and appVersion (charts/kubecapture/Chart.yaml): the images are
# tagged with appVersion and the chart points at that tag, so a release whose parts disagree is refused
# (exit 2) before anything is built. Needs what scripts/setup.sh installs (helm) and scripts/images.sh
# (podman, run from here).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'release: %s\n' "$*"; }
fail() { printf 'release: %s\n' "$1" >&2; exit "${2:-1}"; }

version=${1:-}
[[ $# -eq 1 && -n "$version" ]] || fail "usage: bash scripts/release.sh VERSION (e.g. 0.1.0)" 2
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] || fail "'$version' is not a semantic version (MAJOR.MINOR.PATCH[-PRERELEASE])" 2
chart_version=$(sed -n 's/^version: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' charts/kubecapture/Chart.yaml)
app_version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' charts/kubecapture/Chart.yaml)
if [[ "$chart_version" != "$version" || "$app_version" != "$version" ]]; then
  fail "charts/kubecapture/Chart.yaml has version '$chart_version' and appVersion '$app_version'; set both to '$version' first" 2
fi
helm=.tools/bin/helm
[[ -x "$helm" ]] || fail "$helm is missing: run 'bash scripts/setup.sh' first"

bash scripts/images.sh
"$helm" lint charts/kubecapture --strict --set storage.endpoint=s3.example:443 >/dev/null
"$helm" package charts/kubecapture --destination dist >/dev/null
bash scripts/plugin-release.sh "$version" >/dev/null

cd dist
files=("kubecapture-agent-$version.oci.tar" "kubecapture-operator-$version.oci.tar" "kubecapture-$version.tgz" "kubectl-capture-$version-linux-amd64.tar.gz" "capture.yaml")
for f in "${files[@]}"; do
  [[ -s "$f" ]] || fail "dist/$f was not produced"
done
sha256sum "${files[@]}" >"kubecapture-$version.sha256.tmp"
mv "kubecapture-$version.sha256.tmp" "kubecapture-$version.sha256"
say "dist/ for $version:"
while read -r sum file; do
  printf 'release:   %-40s %8s  sha256 %s\n' "$file" "$(du -h "$file" | cut -f1)" "$sum"
done <"kubecapture-$version.sha256"
