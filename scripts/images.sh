#!/usr/bin/env bash
# Builds the two images of the Dockerfile with podman, as local images
#   kubecapture/agent:VERSION  kubecapture/operator:VERSION   (VERSION: appVersion in charts/kubecapture/Chart.yaml)
# and saves them as dist/kubecapture-agent-VERSION.oci.tar and dist/kubecapture-operator-VERSION.oci.tar.
#
# Needs root. Installs the podman packages it needs with apt-get when missing. Everything podman
# keeps (configuration, images, state) lives under the git-ignored .tools/containers/ and is
# selected with CONTAINERS_CONF / CONTAINERS_STORAGE_CONF: nothing under /etc changes. To use
# these images yourself:
#   export CONTAINERS_CONF=$PWD/.tools/containers/containers.conf CONTAINERS_STORAGE_CONF=$PWD/.tools/containers/storage.conf
#   podman images
#
# The Dockerfile is an ordinary one (FROM mcr.microsoft.com/dotnet/...). No registry is reachable
# on these machines, so where those base images are not present this script makes local stand-ins
# under the exact same names (../shared/containers.md): a Debian bookworm minbase root filesystem
# from the apt mirror (mmdebstrap) plus this machine's own .NET 10 (/usr/share/dotnet). They carry
# the label io.kubecapture.stand-in=true. Where the real images are present, they are used.
#
# Idempotent: an image is rebuilt only when its inputs changed (a SHA-256 of the Dockerfile, the
# build context, this script and the base images' IDs, recorded with the image ID in
# .tools/containers/built-TARGET-VERSION.inputs). KUBECAPTURE_IMAGES_REBUILD=1 forces a rebuild.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
started=$SECONDS
say() { printf 'images: %s\n' "$*"; }
elapsed() { printf '%ss' $((SECONDS - ${1:-$started})); }

version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' charts/kubecapture/Chart.yaml)
[[ -n "$version" ]] || { echo "images: no appVersion in charts/kubecapture/Chart.yaml" >&2; exit 1; }
[[ $(id -u) == 0 ]] || { echo "images: needs root (podman builds rootful, mmdebstrap)" >&2; exit 1; }

# 1. Packages (podman 4.3, runc; buildah/skopeo/umoci for tests that unpack images; mmdebstrap for the stand-ins).
packages=(podman buildah runc skopeo umoci mmdebstrap uidmap containernetworking-plugins golang-github-containers-common conmon catatonit libcap2-bin python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  t=$SECONDS
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  say "packages installed in $(elapsed "$t")"
fi

# 2. podman's configuration, all of it under .tools/containers/. runc: crun fails here on the
# hybrid cgroup hierarchy. ulimits: podman's default nofile (1048576) cannot be set here. Default
# capabilities: containerd's and CRI-O's (what a Kubernetes container gets when it drops nothing).
# File locks and a private tmp_dir: no state shared with another podman on this machine.
state=$root/.tools/containers
mkdir -p "$state/storage" "$state/run" "$state/tmp" "$state/networks" "$state/work"
exec 9>"$state/images.lock"
flock 9
cat >"$state/containers.conf.new" <<EOF
# Written by scripts/images.sh.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
default_capabilities = ["AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "none"
lock_type = "file"
tmp_dir = "$state/tmp"
volume_path = "$state/storage/volumes"

[network]
network_config_dir = "$state/networks"
default_network = "podman"
EOF
cat >"$state/storage.conf.new" <<EOF
# Written by scripts/images.sh.
[storage]
driver = "overlay"
graphroot = "$state/storage"
runroot = "$state/run"
EOF
mv "$state/containers.conf.new" "$state/containers.conf"
mv "$state/storage.conf.new" "$state/storage.conf"
export CONTAINERS_CONF=$state/containers.conf CONTAINERS_STORAGE_CONF=$state/storage.conf
podman=(podman)

# Each line of a log with the time it was written (where a build spends its time).
stamp() { while IFS= read -r line; do printf '%(%H:%M:%S)T %s\n' -1 "$line"; done; }
exists() { "${podman[@]}" image exists "$1"; }
image_id() { "${podman[@]}" image inspect --format '{{.Id}}' "$1"; }

# 3. Base images: the real ones when present, else local stand-ins under the same names.
sdk=mcr.microsoft.com/dotnet/sdk:10.0
runtime_deps=mcr.microsoft.com/dotnet/runtime-deps:10.0
aspnet=mcr.microsoft.com/dotnet/aspnet:10.0
if ! exists "$runtime_deps" || ! exists "$aspnet" || ! exists "$sdk"; then
  [[ -x /usr/share/dotnet/dotnet ]] || { echo "images: no .NET at /usr/share/dotnet to make the base image stand-ins from" >&2; exit 1; }
  t=$SECONDS
  say "base images missing: making local stand-ins for $runtime_deps, $aspnet, $sdk (Debian bookworm minbase + this machine's /usr/share/dotnet)"
  work=$(mktemp -d "$state/work/standin.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  # As in the official images: apt keeps no package caches or downloaded .debs in the layers.
  cat >"$work/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
APT::AutoRemove::SuggestsImportant "false";
EOF
  # runtime-deps: what .NET links against (as the real image: libc, libgcc, libicu, libssl, libstdc++,
  # tzdata, zlib, CA certificates) and the non-root user app (UID 1654).
  mmdebstrap --quiet --variant=minbase --mode=root --format=tar \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --include=ca-certificates,libicu72,libssl3,libstdc++6,libgcc-s1,tzdata,zlib1g \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='chroot "$1" groupadd --gid 1654 app' \
    --customize-hook='chroot "$1" useradd --uid 1654 --gid 1654 --no-create-home --shell /bin/false app' \
    --customize-hook="upload $work/docker-clean /etc/apt/apt.conf.d/docker-clean" \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
    bookworm "$work/runtime-deps.tar" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main" \
    >"$state/standin.log" 2>&1 || { tail -20 "$state/standin.log" >&2; echo "images: mmdebstrap failed (log: $state/standin.log)" >&2; exit 1; }
  "${podman[@]}" import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV APP_UID=1654' --change 'ENV ASPNETCORE_HTTP_PORTS=8080' --change 'ENV DOTNET_RUNNING_IN_CONTAINER=true' \
    --change 'LABEL io.kubecapture.stand-in=true' --change 'CMD ["bash"]' \
    "$work/runtime-deps.tar" "$runtime_deps" >/dev/null
  rm -f "$work/runtime-deps.tar"
  # aspnet: + the host's .NET and ASP.NET Core runtimes. sdk: + all of the host's /usr/share/dotnet,
  # the host's extra CA certificates (HTTPS to NuGet goes through them here) and its NuGet settings.
  cat >"$work/aspnet.Containerfile" <<EOF
FROM $runtime_deps
RUN mkdir -p /usr/share/dotnet/shared \\
 && cp -a /host-dotnet/dotnet /host-dotnet/host /host-dotnet/LICENSE.txt /usr/share/dotnet/ \\
 && cp -a /host-dotnet/shared/Microsoft.NETCore.App /host-dotnet/shared/Microsoft.AspNetCore.App /usr/share/dotnet/shared/ \\
 && ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet
ENV DOTNET_VERSION=$(ls /usr/share/dotnet/shared/Microsoft.NETCore.App | sort -V | tail -1)
LABEL io.kubecapture.stand-in=true
EOF
  mkdir -p "$work/certs"
  cp /usr/local/share/ca-certificates/*.crt "$work/certs/" 2>/dev/null || true
  cat >"$work/sdk.Containerfile" <<EOF
FROM $runtime_deps
COPY certs/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null \\
 && cp -a /host-dotnet /usr/share/dotnet \\
 && ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet
ENV DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_GENERATE_ASPNET_CERTIFICATE=false \\
    DOTNET_USE_POLLING_FILE_WATCHER=true NUGET_XMLDOC_MODE=skip NUGET_CERT_REVOCATION_MODE=offline
LABEL io.kubecapture.stand-in=true
EOF
  for image in aspnet sdk; do
    name=$aspnet
    [[ $image == sdk ]] && name=$sdk
    "${podman[@]}" build --quiet --pull=never --network host --force-rm -v /usr/share/dotnet:/host-dotnet:ro \
      -f "$work/$image.Containerfile" -t "$name" "$work" >/dev/null
  done
  rm -rf "$work"
  trap - EXIT
  say "stand-ins made in $(elapsed "$t")"
fi

# 4. The two targets, each rebuilt only when its inputs changed.
# The build context as the Dockerfile sees it (.dockerignore keeps bin/ and obj/ out).
context=(Dockerfile .dockerignore Directory.Build.props .editorconfig KubeCapture.sln capture-sidecar proto contracts operator)
inputs=$({
  find "${context[@]}" -type f -not -path '*/bin/*' -not -path '*/obj/*' -print0 | sort -z | xargs -0 sha256sum
  sha256sum scripts/images.sh
  for base in "$sdk" "$runtime_deps" "$aspnet"; do echo "$base $(image_id "$base")"; done
} | sha256sum | cut -c1-32)

mkdir -p dist
built=()
for target in agent operator; do
  image=kubecapture/$target:$version
  archive=dist/kubecapture-$target-$version.oci.tar
  # What was built from which inputs: "INPUTS IMAGE-ID" (not an image label: buildah's layer cache
  # keeps an old label when every step is cached).
  record=$state/built-$target-$version.inputs
  if [[ ${KUBECAPTURE_IMAGES_REBUILD:-} != 1 ]] && exists "$image" && [[ -f "$record" && $(cat "$record") == "$inputs $(image_id "$image")" ]]; then
    say "$image is up to date (inputs $inputs)"
  else
    t=$SECONDS
    say "building $image (target $target)"
    # --network host: the build's RUN steps (apt-get, NuGet restore) reach the network without
    # podman's default bridge (which leaves a bridge and iptables chains on the host).
    "${podman[@]}" build --pull=never --network host --force-rm --layers \
      --target "$target" -t "$image" -f Dockerfile . 2>&1 \
      | stamp >"$state/build-$target.log" || { tail -40 "$state/build-$target.log" >&2; echo "images: building $image failed (log: $state/build-$target.log)" >&2; exit 1; }
    echo "$inputs $(image_id "$image")" >"$record"
    say "built $image in $(elapsed "$t")"
    built+=("$target")
  fi
  saved=$state/saved-$target-$version.inputs
  if [[ ! -f "$archive" || ! -f "$saved" || $(cat "$saved") != "$inputs" ]]; then
    t=$SECONDS
    rm -f "$archive" "$saved"
    "${podman[@]}" save --quiet --format oci-archive -o "$archive.tmp" "$image"
    mv "$archive.tmp" "$archive"
    echo "$inputs" >"$saved"
    say "saved $archive in $(elapsed "$t")"
  fi
done

# Earlier builds of the two images (untagged by this one) and the build stage's intermediate layers:
# without this every change would leave ~1 GB behind. The next build after a change repeats the
# build stage's apt-get (~15 s); an unchanged build is skipped before podman is asked.
if ((${#built[@]})); then
  "${podman[@]}" image prune --force >/dev/null 2>&1 || true
fi

for target in agent operator; do
  image=kubecapture/$target:$version
  size=$("${podman[@]}" image inspect --format '{{.Size}}' "$image")
  archive=dist/kubecapture-$target-$version.oci.tar
  say "$(printf '%-28s %4s MB image, %4s MB %s' "$image" $((size / 1000000)) $(($(stat -c %s "$archive") / 1000000)) "$archive")"
done
say "done in $(elapsed)"
