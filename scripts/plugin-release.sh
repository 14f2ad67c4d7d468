#!/usr/bin/env bash
# Usage: bash scripts/plugin-release.sh VERSION      (scripts/release.sh runs it)
#
# Builds kubectl-capture as one self-contained single-file executable for linux-x64 and writes to dist/:
#   kubectl-capture-VERSION-linux-amd64.tar.gz   kubectl-capture and LICENSE.txt
#   capture.yaml                                the krew manifest (kubectl-capture/krew/capture.yaml)
#                                               with the version, the archive's URL and SHA-256 filled in
# The archive's URL is KUBECAPTURE_RELEASE_URL/kubectl-capture-VERSION-linux-amd64.tar.gz (where the
# release is published); without it, the file:// URL of dist/ (for a local install:
# kubectl krew install --manifest=dist/capture.yaml --archive=dist/kubectl-capture-VERSION-linux-amd64.tar.gz).
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { printf 'plugin-release: %s\n' "$1" >&2; exit "${2:-1}"; }

version=${1:-}
[[ $# -eq 1 && -n "$version" ]] || fail "usage: bash scripts/plugin-release.sh VERSION (e.g. 0.1.0)" 2
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] || fail "'$version' is not a semantic version (MAJOR.MINOR.PATCH[-PRERELEASE])" 2

mkdir -p dist
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dotnet publish kubectl-capture -c Release -r linux-x64 --self-contained -p:PublishSingleFile=true -p:EnableCompressionInSingleFile=true \
  -p:Version="$version" -o "$work/publish" -nologo -v quiet >"$work/publish.log" 2>&1 || { cat "$work/publish.log" >&2; fail "dotnet publish kubectl-capture failed"; }
mkdir "$work/archive"
cp "$work/publish/kubectl-capture" "$work/archive/"
cat >"$work/archive/LICENSE.txt" <<'LICENSE'
kubectl-capture is part of KubeCapture; its licence is the repository's.
LICENSE
archive="kubectl-capture-$version-linux-amd64.tar.gz"
tar -C "$work/archive" --owner=0 --group=0 --numeric-owner --mtime='2000-01-01 00:00Z' --sort=name -czf "$work/$archive" kubectl-capture LICENSE.txt
mv "$work/$archive" "dist/$archive"
sha=$(sha256sum "dist/$archive" | cut -d' ' -f1)
base=${KUBECAPTURE_RELEASE_URL:-file://$PWD/dist}
sed -e "s|{{VERSION}}|$version|g" -e "s|{{URI_LINUX_AMD64}}|${base%/}/$archive|g" -e "s|{{SHA256_LINUX_AMD64}}|$sha|g" \
  kubectl-capture/krew/capture.yaml >"$work/capture.yaml"
! grep -n '{{' "$work/capture.yaml" >&2 || fail "kubectl-capture/krew/capture.yaml has a placeholder this script does not fill"
mv "$work/capture.yaml" dist/capture.yaml
printf 'plugin-release: dist/%s (sha256 %s) and dist/capture.yaml\n' "$archive" "$sha"
