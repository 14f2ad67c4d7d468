using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using k8s;
using k8s.Models;

namespace KubeCapture.Testing.RealNode;

/// <summary>
/// A one-node Kubernetes cluster on this machine, from its real parts (../shared/realnode/README.md):
/// etcd and kube-apiserver bound and advertised on the node IP (ServiceAccount admission on, the
/// front-proxy flags for API aggregation), containerd, the CNI bridge, the kubelet, kube-proxy
/// (iptables), the scheduler, the controller-manager and dnsmasq for cluster DNS; the pause and
/// busybox images built here and the given image archives imported into containerd. Every host
/// change is journaled before it is made and undone by <see cref="StopAsync"/> (or, after a crash,
/// by the next node's start). One per machine (<see cref="NodeLock"/>).
/// </summary>
public sealed class NodeCluster : IAsyncDisposable
{
    private readonly NodeLayout layout;
    private readonly NodeJournal journal;
    private readonly NodeLock nodeLock;
    private readonly Action<string> log;
    private readonly List<NodeDaemon> daemons = [];
    private ClusterDns? dns;
    private int stopped;

    private NodeCluster(NodeLayout layout, NodeJournal journal, NodeLock nodeLock, Action<string> log)
    {
        this.layout = layout;
        this.journal = journal;
        this.nodeLock = nodeLock;
        this.log = log;
    }

    public NodeState State { get; private set; } = null!;

    /// <summary>
    /// Starts the node in <paramref name="directory"/> (created; it must not hold another node) with
    /// <paramref name="images"/> imported (OCI or docker archives, with an optional <c>=NAME</c> to tag
    /// the first image again), and returns once the node is Ready and untainted, the cluster's
    /// controllers run, Services answer through kube-proxy and DNS.
    /// </summary>
    public static async Task<NodeCluster> StartAsync(string directory, IReadOnlyList<string> images, Action<string> log, CancellationToken cancellationToken = default)
    {
        if (NodeBinaries.Missing is { } missing)
        {
            throw new InvalidOperationException(missing);
        }

        var nodeLock = NodeLock.Acquire();
        try
        {
            if (NodeLock.PreviousStateDirectory() is { } previous && NodeJournal.Read(new NodeLayout(previous)) is { Clean: false } old)
            {
                log($"cleaning up after the node in {previous}, whose process ended without doing it");
                var left = await NodeTeardown.RunAsync(new NodeLayout(previous), old, new NodeLayout(previous).Kubeconfig("admin"), log);
                if (left.Count > 0)
                {
                    throw new InvalidOperationException($"the node in {previous} left what could not be undone; fix it by hand first:\n  {string.Join("\n  ", left)}");
                }

                Directory.Delete(previous, recursive: true);
            }

            var layout = new NodeLayout(Path.GetFullPath(directory));
            Directory.CreateDirectory(layout.Directory);
            if (File.Exists(layout.JournalFile))
            {
                throw new InvalidOperationException($"{layout.Directory} already holds a node's state: give a new directory");
            }

            nodeLock.Record(layout.Directory);
            var journal = new NodeJournal();
            await NodeTeardown.RecordHostAsync(journal);
            journal.Write(layout);
            var cluster = new NodeCluster(layout, journal, nodeLock, log);
            try
            {
                await cluster.StartComponentsAsync(images, cancellationToken);
                return cluster;
            }
            catch
            {
                await cluster.StopAsync();
                throw;
            }
        }
        catch
        {
            nodeLock.Dispose();
            throw;
        }
    }

    /// <summary>Stops everything and undoes every host change; returns what could not be undone (empty: the host is as it was).</summary>
    public async Task<IReadOnlyList<string>> StopAsync()
    {
        if (Interlocked.Exchange(ref stopped, 1) == 1)
        {
            return [];
        }

        if (dns is not null)
        {
            await dns.DisposeAsync();
        }

        var leftovers = await NodeTeardown.RunAsync(layout, journal, layout.Kubeconfig("admin"), log);
        if (leftovers.Count == 0)
        {
            nodeLock.Release();
        }

        nodeLock.Dispose();
        return leftovers;
    }

    public async ValueTask DisposeAsync() => await StopAsync();

    private async Task StartComponentsAsync(IReadOnlyList<string> images, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var pki = NodePki.Write(layout);
        await PodBridge.AddNodeIpAsync(layout, journal);
        await PodBridge.CreateAsync(layout, journal);

        var etcdPort = FreePort();
        var etcdPeer = FreePort();
        var etcd = Start("etcd", NodeBinaries.Etcd,
            "--name", "kcnode", "--data-dir", layout.Etcd,
            "--listen-client-urls", $"http://127.0.0.1:{etcdPort}", "--advertise-client-urls", $"http://127.0.0.1:{etcdPort}",
            "--listen-peer-urls", $"http://127.0.0.1:{etcdPeer}", "--initial-advertise-peer-urls", $"http://127.0.0.1:{etcdPeer}",
            "--initial-cluster", $"kcnode=http://127.0.0.1:{etcdPeer}", "--unsafe-no-fsync", "--log-level", "warn");
        var containerd = ContainerdRuntime.Start(layout);
        daemons.Add(containerd);
        var imported = ImportImagesAsync(containerd, images, cancellationToken);

        await WaitForHttpAsync($"http://127.0.0.1:{etcdPort}/health", null, etcd, TimeSpan.FromSeconds(30), cancellationToken);
        var apiServer = Start("kube-apiserver", NodeBinaries.ApiServer, ApiServerArguments(etcdPort));
        await WaitForHttpAsync($"{NodeLayout.ApiServerUrl}/readyz", pki.AdminToken, apiServer, TimeSpan.FromSeconds(90), cancellationToken);
        log($"kube-apiserver ready at {NodeLayout.ApiServerUrl} ({clock.Elapsed.TotalSeconds:0.0} s)");

        using var admin = new k8s.Kubernetes(KubernetesClientConfiguration.BuildConfigFromConfigFile(layout.Kubeconfig("admin")));
        var controllers = Start("kube-controller-manager", NodeBinaries.ControllerManager,
            $"--kubeconfig={layout.Kubeconfig("kube-controller-manager")}", "--secure-port=0", "--leader-elect=false",
            "--use-service-account-credentials=true", $"--service-account-private-key-file={layout.Pki}/sa.key",
            $"--root-ca-file={layout.Pki}/serving-ca.crt", "--allocate-node-cidrs=false", "--cluster-name=kcnode", "--v=1");
        var scheduler = Start("kube-scheduler", NodeBinaries.Scheduler,
            $"--kubeconfig={layout.Kubeconfig("kube-scheduler")}", "--secure-port=0", "--leader-elect=false", "--v=1");
        var proxy = Start("kube-proxy", NodeBinaries.KubeProxy,
            $"--kubeconfig={layout.Kubeconfig("kube-proxy")}", $"--hostname-override={NodeLayout.NodeName}", "--proxy-mode=iptables",
            $"--cluster-cidr={NodeLayout.PodCidr}", "--iptables-localhost-nodeports=false", $"--nodeport-addresses={NodeLayout.NodeIp}/32",
            "--conntrack-max-per-core=0", "--conntrack-min=0", "--conntrack-tcp-timeout-established=0", "--conntrack-tcp-timeout-close-wait=0",
            $"--healthz-bind-address={NodeLayout.NodeIp}:10256", $"--metrics-bind-address={NodeLayout.NodeIp}:10249", "--v=1");
        dns = ClusterDns.Start(layout, admin);
        daemons.Add(dns.Dnsmasq);

        await ContainerdRuntime.WaitForCriAsync(layout, containerd, TimeSpan.FromSeconds(60));
        var names = await imported;
        var kubelet = Start("kubelet", NodeBinaries.Kubelet,
            $"--config={WriteKubeletConfiguration()}", $"--kubeconfig={layout.Kubeconfig("kubelet")}",
            $"--root-dir={layout.KubeletRoot}", $"--cert-dir={Path.Combine(layout.KubeletRoot, "pki")}",
            $"--node-ip={NodeLayout.NodeIp}", $"--hostname-override={NodeLayout.NodeName}",
            $"--pod-infra-container-image={NodeLayout.PauseImage}", "--v=1");

        await WaitForNodeAsync(admin, kubelet, TimeSpan.FromSeconds(120), cancellationToken);
        log($"node {NodeLayout.NodeName} Ready ({clock.Elapsed.TotalSeconds:0.0} s)");
        await WaitForControllersAsync(admin, controllers, scheduler, TimeSpan.FromSeconds(60), cancellationToken);
        await WaitForHttpAsync($"http://{NodeLayout.NodeIp}:10256/healthz", null, proxy, TimeSpan.FromSeconds(60), cancellationToken);
        await WaitForDnsAsync(TimeSpan.FromSeconds(30), cancellationToken);

        State = new NodeState
        {
            Directory = layout.Directory,
            ApiServerUrl = NodeLayout.ApiServerUrl,
            AdminToken = pki.AdminToken,
            AdminKubeconfig = layout.Kubeconfig("admin"),
            ServingCaPem = pki.ServingCaPem,
            FrontProxyCaPem = File.ReadAllText(Path.Combine(layout.Pki, "front-proxy-ca.crt")),
            NodeName = NodeLayout.NodeName,
            NodeIp = NodeLayout.NodeIp,
            PodCidr = NodeLayout.PodCidr,
            ServiceCidr = NodeLayout.ServiceCidr,
            ContainerdSocket = layout.ContainerdSocket,
            Images = names,
            StartSeconds = Math.Round(clock.Elapsed.TotalSeconds, 1),
        };
        State.Write(layout.StateFile);
        log($"ready in {State.StartSeconds.ToString("0.0", CultureInfo.InvariantCulture)} s: kubectl --kubeconfig {State.AdminKubeconfig} get nodes");
    }

    private string[] ApiServerArguments(int etcdPort)
    {
        var pki = layout.Pki;
        return
        [
            $"--etcd-servers=http://127.0.0.1:{etcdPort}", $"--secure-port={NodeLayout.ApiServerPort}",
            $"--bind-address={NodeLayout.NodeIp}", $"--advertise-address={NodeLayout.NodeIp}",
            $"--cert-dir={pki}", $"--tls-cert-file={pki}/serving.crt", $"--tls-private-key-file={pki}/serving.key",
            $"--client-ca-file={pki}/client-ca.crt", $"--token-auth-file={pki}/tokens.csv",
            "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
            "--service-account-issuer=https://kubernetes.default.svc", $"--service-account-key-file={pki}/sa.pub", $"--service-account-signing-key-file={pki}/sa.key",
            $"--service-cluster-ip-range={NodeLayout.ServiceCidr}", "--allow-privileged=true",
            $"--kubelet-client-certificate={pki}/kubelet-client.crt", $"--kubelet-client-key={pki}/kubelet-client.key",
            "--kubelet-preferred-address-types=InternalIP",
            $"--audit-log-path={Path.Combine(layout.Logs, "audit.log")}", $"--audit-policy-file={WriteAuditPolicy()}",
            $"--requestheader-client-ca-file={pki}/front-proxy-ca.crt", "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group", "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            $"--proxy-client-cert-file={pki}/front-proxy-client.crt", $"--proxy-client-key-file={pki}/front-proxy-client.key",
            "--enable-aggregator-routing=true", "--v=0",
        ];
    }

    private string WriteAuditPolicy()
    {
        var path = Path.Combine(layout.Directory, "audit-policy.yaml");
        File.WriteAllText(path, """
            apiVersion: audit.k8s.io/v1
            kind: Policy
            omitStages: [RequestReceived]
            rules:
            - level: Metadata
            """);
        return path;
    }

    /// <summary>
    /// The kubelet's configuration: cgroupfs, no swap check (fact 4), no iptables utility chains
    /// (fact 5), the cluster DNS on the node IP (fact 14), x509 and webhook authentication and
    /// webhook authorization (kube-apiserver reaches it with its client certificate), and paths
    /// under the state directory wherever the configuration allows it.
    /// </summary>
    private string WriteKubeletConfiguration()
    {
        Directory.CreateDirectory(layout.KubeletRoot);
        var resolv = Path.Combine(layout.KubeletRoot, "resolv.conf");
        File.WriteAllText(resolv, $"nameserver {NodeLayout.NodeIp}\n");
        var path = Path.Combine(layout.KubeletRoot, "config.yaml");
        File.WriteAllText(path, $"""
            apiVersion: kubelet.config.k8s.io/v1beta1
            kind: KubeletConfiguration
            address: {NodeLayout.NodeIp}
            port: 10250
            readOnlyPort: 0
            healthzBindAddress: 127.0.0.1
            healthzPort: 0
            containerRuntimeEndpoint: unix://{layout.ContainerdSocket}
            cgroupDriver: cgroupfs
            failSwapOn: false
            makeIPTablesUtilChains: false
            clusterDNS: [{NodeLayout.NodeIp}]
            clusterDomain: {NodeLayout.ClusterDomain}
            resolvConf: {resolv}
            volumePluginDir: {Path.Combine(layout.KubeletRoot, "volume-plugins")}
            authentication:
              anonymous: {"{enabled: false}"}
              webhook: {"{enabled: true}"}
              x509: {"{clientCAFile: " + Path.Combine(layout.Pki, "client-ca.crt") + "}"}
            authorization:
              mode: Webhook
            rotateCertificates: false
            serverTLSBootstrap: false
            serializeImagePulls: false
            imageGCHighThresholdPercent: 100
            imageGCLowThresholdPercent: 99
            evictionHard: {"{memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}"}
            shutdownGracePeriod: 0s
            shutdownGracePeriodCriticalPods: 0s
            """);
        return path;
    }

    private async Task<IReadOnlyList<string>> ImportImagesAsync(NodeDaemon containerd, IReadOnlyList<string> images, CancellationToken cancellationToken)
    {
        await ContainerdRuntime.WaitForCriAsync(layout, containerd, TimeSpan.FromSeconds(60));
        Directory.CreateDirectory(layout.Images);
        var pause = Path.Combine(layout.Images, "pause.oci.tar");
        StaticImage.WritePause(pause);
        var busybox = Path.Combine(layout.Images, "busybox.oci.tar");
        StaticImage.WriteBusybox(busybox);
        var names = new List<string>();
        foreach (var image in new[] { pause, busybox }.Concat(images))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var (archive, tag) = image.Split('=', 2) is [var a, var t] ? (a, t) : (image, null);
            var clock = Stopwatch.StartNew();
            var imported = await ContainerdRuntime.ImportAsync(layout, archive);
            if (imported.Count == 0)
            {
                throw new InvalidOperationException($"ctr images import {archive} brought no image");
            }

            names.AddRange(imported);
            if (tag is not null)
            {
                await ContainerdRuntime.TagAsync(layout, imported[0], tag);
                names.Add(tag);
            }

            log($"imported {Path.GetFileName(archive)} as {string.Join(", ", imported.Append(tag).OfType<string>())} ({clock.Elapsed.TotalSeconds:0.0} s)");
        }

        return names;
    }

    private NodeDaemon Start(string name, string file, params string[] arguments)
    {
        var daemon = NodeDaemon.Start(layout, name, file, arguments);
        daemons.Add(daemon);
        return daemon;
    }

    private async Task WaitForHttpAsync(string url, string? token, NodeDaemon daemon, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var handler = new HttpClientHandler { ServerCertificateCustomValidationCallback = HttpClientHandler.DangerousAcceptAnyServerCertificateValidator };
        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(3) };
        var last = "";
        await WaitAsync(daemon.Name, timeout, cancellationToken, async () =>
        {
            daemon.EnsureRunning();
            try
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, url);
                if (token is not null)
                {
                    request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                }

                using var response = await http.SendAsync(request, cancellationToken);
                last = $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync(cancellationToken)}";
                return response.IsSuccessStatusCode;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
            {
                last = e.Message;
                return false;
            }
        }, () => $"{url}: {last}");
    }

    private async Task WaitForNodeAsync(IKubernetes admin, NodeDaemon kubelet, TimeSpan timeout, CancellationToken cancellationToken)
    {
        V1Node? node = null;
        await WaitAsync("node Ready", timeout, cancellationToken, async () =>
        {
            kubelet.EnsureRunning();
            daemons.ForEach(d => d.EnsureRunning());
            node = (await admin.CoreV1.ListNodeAsync(cancellationToken: cancellationToken)).Items.FirstOrDefault();
            // The controller-manager takes the not-ready taint off once the node is Ready (fact 6).
            return node?.Status?.Conditions?.Any(c => c.Type == "Ready" && c.Status == "True") == true
                && !(node.Spec?.Taints ?? []).Any();
        }, () => node is null ? "no node registered yet" : $"conditions {string.Join(", ", node.Status?.Conditions?.Select(c => $"{c.Type}={c.Status} {c.Message}") ?? [])}; taints {string.Join(", ", node.Spec?.Taints?.Select(t => t.Key) ?? [])}");
    }

    private async Task WaitForControllersAsync(IKubernetes admin, NodeDaemon controllers, NodeDaemon scheduler, TimeSpan timeout, CancellationToken cancellationToken)
    {
        // The ServiceAccount controller made the default ServiceAccount, and the root CA publisher the CA every projected token volume mounts.
        await WaitAsync("the controller-manager's ServiceAccounts", timeout, cancellationToken, async () =>
        {
            controllers.EnsureRunning();
            scheduler.EnsureRunning();
            try
            {
                await admin.CoreV1.ReadNamespacedServiceAccountAsync("default", "default", cancellationToken: cancellationToken);
                await admin.CoreV1.ReadNamespacedConfigMapAsync("kube-root-ca.crt", "default", cancellationToken: cancellationToken);
                return true;
            }
            catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
            {
                return false;
            }
        }, () => "no default ServiceAccount or kube-root-ca.crt in namespace default");
    }

    private async Task WaitForDnsAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var name = $"kubernetes.default.svc.{NodeLayout.ClusterDomain}";
        IReadOnlyList<IPAddress> answer = [];
        await WaitAsync("cluster DNS", timeout, cancellationToken, async () =>
        {
            dns!.Dnsmasq.EnsureRunning();
            answer = await DnsProbe.ResolveAsync(IPAddress.Parse(NodeLayout.NodeIp), name, TimeSpan.FromSeconds(1));
            return answer.Contains(IPAddress.Parse(NodeLayout.KubernetesServiceIp));
        }, () => $"{name} answered [{string.Join(", ", answer)}]");
    }

    private static async Task WaitAsync(string what, TimeSpan timeout, CancellationToken cancellationToken, Func<Task<bool>> ready, Func<string> state)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await ready())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{what}: not within {timeout.TotalSeconds} s ({state()})");
            }

            await Task.Delay(100, cancellationToken);
        }
    }

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
