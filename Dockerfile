# syntax=docker/dockerfile:1
# Two images from one build:
#   docker build --target agent    -t kubecapture/agent:0.1.0 .
#   docker build --target operator -t kubecapture/operator:0.1.0 .

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
# The agent is published as NativeAOT (capture-sidecar/KubeCapture.Agent.csproj): the ILCompiler
# links the native executable with clang.
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Directory.Build.props .editorconfig KubeCapture.sln ./
COPY capture-sidecar/ capture-sidecar/
COPY proto/ proto/
COPY contracts/ contracts/
COPY operator/ operator/
RUN dotnet publish capture-sidecar -c Release -o /out/agent \
 && dotnet publish operator -c Release -o /out/operator

# The capture agent, started as an ephemeral container in the target pod's network namespace.
# It needs libpcap and nothing else: no shell tools, no volumes, no ports. The operator runs it with
# every capability dropped but NET_RAW and no privilege escalation. The binary carries the file
# capability cap_net_raw+p so that a non-root UID (securityContext.runAsUser) can capture too
# (Kubernetes runtimes give non-root users no ambient capabilities). Permitted, not effective: the
# agent raises it itself (capture-sidecar/Capture/NetRawCapability.cs), so that a container without
# NET_RAW still starts and says "capture needs root or CAP_NET_RAW" (exit 2) instead of failing exec.
# A NativeAOT executable needs no .NET runtime: runtime-deps has what it links against (libc, OpenSSL).
FROM mcr.microsoft.com/dotnet/runtime-deps:10.0 AS agent
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpcap0.8 libcap2-bin \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/agent/kubecapture-agent /app/kubecapture-agent
RUN setcap cap_net_raw+p /app/kubecapture-agent && apt-get purge -y libcap2-bin && apt-get autoremove -y
ENTRYPOINT ["/app/kubecapture-agent"]
CMD ["--help"]

# The operator: watches PacketCaptures, injects agents, serves the gRPC ingest, writes to S3.
# libpcap is here for one reason: compiling BPF filters to validate them before any capture starts.
FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS operator
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpcap0.8 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/operator /app
USER 65532:65532
ENV ASPNETCORE_URLS=http://+:8080
EXPOSE 8080
ENTRYPOINT ["/app/kubecapture-operator"]
