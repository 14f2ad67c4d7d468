using System.Text.Json;
using k8s;
using k8s.Models;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Admission;
using KubeCapture.Operator.Provenance;
using KubeCapture.Operator.Rbac;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Tests.Ingest;
using KubeCapture.Operator.Tests.Tracing;
using KubeCapture.Testing.Containers;
using KubeCapture.Testing.Kubernetes;
using KubeCapture.Testing.Processes;
using KubeCapture.Testing.S3;
using Minio;
using Minio.DataModel.Args;

namespace KubeCapture.Operator.Tests.EndToEnd;

/// <summary>
/// A cluster on one machine, from its real parts: the real kube-apiserver with the chart installed
/// (<see cref="KubeCaptureInstall"/>); the operator as a real process (reconciler, leader election
/// and ingest) with its ServiceAccount's token, never as admin; s3rver for storage; a test kubelet
/// that binds pods, reports them Running with the IP of the network namespace that plays them, and
/// runs each capture container from the agent image (podman, built by scripts/images.sh) inside
/// that namespace, with the securityContext the operator asked for. The ingest serves TLS (as the
/// chart does) on one <see cref="NodeService"/> address that every pod reaches over its own link to
/// the node, with the operator's managed certificate for that address.
/// Each test takes its own namespace and pods. <see cref="OwnApiServerCluster"/> has a server of its
/// own, for tests that stop the control plane.
/// </summary>
public class ApiServerCluster : IAsyncLifetime
{
    private readonly List<PodNetwork> networks = [];
    private NodeService? service;
    private NodeService? httpsAddress;
    private S3rverFixture? s3;
    private OtlpTraceReceiver? traces;
    private string? work;

    public KubeCaptureInstall Install { get; private set; } = null!;

    public IKubernetes Admin { get; private set; } = null!;

    public OperatorHost Operator { get; private set; } = null!;

    public TestKubelet Kubelet { get; private set; } = null!;

    /// <summary>The node address (in 198.18.0.0/15, as hand-written Endpoints need) where the operator's HTTPS endpoints listen.</summary>
    public string HttpsAddress => httpsAddress?.Address ?? throw new InvalidOperationException("not started");

    /// <summary>The port of the admission webhooks (the chart's Service RELEASE-kubecapture-webhook points here).</summary>
    public int WebhookPort { get; } = S3rverFixture.FreeTcpPort();

    public static string WebhookServiceName => $"{KubeCaptureInstall.Release}-kubecapture-webhook";

    public S3rverFixture S3 => s3 ?? throw new InvalidOperationException("not started");

    /// <summary>The OTLP/HTTP receiver the operator exports its traces to.</summary>
    public OtlpTraceReceiver Traces => traces ?? throw new InvalidOperationException("not started");

    public string WorkDirectory => work ?? throw new InvalidOperationException("not started");

    public async Task InitializeAsync()
    {
        if ((KubeApiServer.Missing ?? ContainerImages.Missing) is not null && !ContainerImages.RequiredByCi)
        {
            return; // each test skips with the reason (CreateNamespaceAsync)
        }

        Install = await InstallAsync();
        Admin = Install.Server.AdminClient();
        work = Directory.CreateTempSubdirectory("kcE-").FullName;
        service = await NodeService.CreateAsync();
        s3 = await S3rverFixture.StartAsync();
        // TLS, as the chart serves the ingest: the operator's own CA and serving certificate in the chart's
        // Secret (written as its ServiceAccount), for the address the pods reach it by; agents get the CA in their args.
        var ingestUrl = service.Url(S3rverFixture.FreeTcpPort()).Replace("http://", "https://", StringComparison.Ordinal);
        var settings = OperatorHost.S3Settings(s3);
        settings["ServingCertificate:Namespace"] = KubeCaptureInstall.Namespace;
        settings["ServingCertificate:SecretName"] = OperatorPermissions.ServingCertificateSecret.Replace(Permission.FullnamePlaceholder, $"{KubeCaptureInstall.Release}-kubecapture", StringComparison.Ordinal);
        settings["ServingCertificate:IpAddresses:0"] = service.Address;
        settings["Reconciler:Enabled"] = "true";
        // The upload tokens' key as the chart configures it: the Secret it names, created by the operator (nothing injected).
        settings["Ingest:TokenKeySecret"] = Install.OperatorSettings["Ingest:TokenKeySecret"];
        settings["Ingest:BindToPodAddress"] = "true"; // as in a cluster: the reconciler tells the ingest each pod's addresses
        // The token's delivery a user of a cluster with the fix of kubernetes/kubernetes#114984 (1.33+, or backported) sets; the
        // test kube-apiserver is 1.28.7, where Auto would choose PodSpec (PodSpecTokenCluster), and its test kubelet reads the Secret.
        settings["Ingest:TokenDelivery"] = TokenDelivery;
        settings["Kestrel:Endpoints:Ingest:Url"] = ingestUrl;
        settings["Reconciler:IngestUrl"] = ingestUrl;
        settings["Reconciler:AgentImage"] = ContainerImages.Agent;
        settings["Reconciler:Grace"] = "10s";
        settings["Reconciler:ResyncPeriod"] = "1s";
        settings["Policy:MaxConcurrentPerNamespace"] = "5";
        settings["Policy:MaxConcurrentInCluster"] = "20";
        settings["Policy:MaxSnaplen"] = "262144";
        settings["LeaderElection:Namespace"] = KubeCaptureInstall.Namespace;
        settings["LeaderElection:LeaseName"] = $"kubecapture-e2e-{Environment.ProcessId}";
        // The same identity after a restart, as a pod restarted in place keeps its name: it takes its Lease back at once.
        settings["LeaderElection:Identity"] = $"kubecapture-e2e-{Environment.ProcessId}";
        settings["LeaderElection:LeaseDuration"] = "6s";
        settings["LeaderElection:RenewDeadline"] = "4s";
        settings["LeaderElection:RetryPeriod"] = "1s";
        // The admission webhooks, as the chart runs them: kube-apiserver stamps every capture through them.
        httpsAddress = await NodeService.CreateAsync(routable: true);
        settings["Admission:Enabled"] = "true";
        settings["Admission:Url"] = string.Create(System.Globalization.CultureInfo.InvariantCulture, $"https://{HttpsAddress}:{WebhookPort}");
        settings["ServingCertificate:DnsNames:0"] = $"{WebhookServiceName}.{KubeCaptureInstall.Namespace}.svc";
        settings["ServingCertificate:MutatingWebhookConfigurations:0"] = RequesterStampWebhooks;
        settings["ServingCertificate:ValidatingWebhookConfigurations:0"] = RequesterStampWebhooks;
        await ConfigureAsync(settings);
        // Tracing on, as the chart's tracing.otlpEndpoint turns it on: the operator exports its spans to the tests' receiver.
        traces = new OtlpTraceReceiver();
        var environment = new Dictionary<string, string>(traces.ExporterEnvironment) { ["KUBECONFIG"] = Install.OperatorKubeconfig };
        // Under the memory limit the chart renders for the operator's container (a memory cgroup), as in its pod.
        Operator = await OperatorHost.StartProcessAsync(settings, environment, memoryLimitBytes: OperatorMemoryLimit);
        Kubelet = new TestKubelet(new ApiServerPods(Install.Server.AdminClient()), OperatorHarness.AgentDll(), AgentMode.Cluster, null, work) { RunImages = true };
        await PointServiceAsync(WebhookServiceName, "webhook", WebhookPort);
        await WaitUntilStampedAsync();
        await StartedAsync();
    }

    /// <summary>The operator container's memory limit as the chart renders it (resources.limits.memory), in bytes.</summary>
    public long OperatorMemoryLimit => (long)KubernetesYaml.LoadAllFromString(Install.RenderedYaml).OfType<V1Deployment>().Single()
        .Spec.Template.Spec.Containers.Single(c => c.Name == "operator").Resources.Limits["memory"].ToDecimal();

    /// <summary>Both webhook configurations of the chart are named this (OperatorPermissions.RequesterStampWebhooks).</summary>
    public static string RequesterStampWebhooks =>
        OperatorPermissions.RequesterStampWebhooks.Replace(Permission.FullnamePlaceholder, $"{KubeCaptureInstall.Release}-kubecapture", StringComparison.Ordinal);

    /// <summary>Hand-written Endpoints (no Endpoints controller runs) for one of the chart's Services, to the operator's HTTPS address.</summary>
    protected async Task PointServiceAsync(string serviceName, string portName, int port)
    {
        var endpoints = new V1Endpoints
        {
            Metadata = new V1ObjectMeta { Name = serviceName, NamespaceProperty = KubeCaptureInstall.Namespace },
            Subsets = [new V1EndpointSubset { Addresses = [new V1EndpointAddress { Ip = HttpsAddress }], Ports = [new Corev1EndpointPort { Name = portName, Port = port, Protocol = "TCP" }] }],
        };
        try
        {
            await Admin.CoreV1.ReplaceNamespacedEndpointsAsync(endpoints, serviceName, KubeCaptureInstall.Namespace);
        }
        catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            await Admin.CoreV1.CreateNamespacedEndpointsAsync(endpoints, KubeCaptureInstall.Namespace);
        }
    }

    /// <summary>Until kube-apiserver reaches the webhooks (the operator published its CA to them): a dry-run create comes back stamped.</summary>
    private async Task WaitUntilStampedAsync()
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        var probe = new PacketCapture
        {
            Metadata = new V1ObjectMeta { Name = "webhook-probe", NamespaceProperty = KubeCaptureInstall.Namespace },
            Spec = new PacketCaptureSpec { Reason = "is the admission webhook up?", Target = new CaptureTarget { PodName = "none" }, Duration = "1s" },
        };
        while (true)
        {
            try
            {
                var stamped = await Admin.CustomObjects.CreateNamespacedCustomObjectAsync<PacketCapture>(probe, PacketCapture.Group, PacketCapture.Version, KubeCaptureInstall.Namespace, PacketCapture.Plural, dryRun: "All");
                if (stamped.Metadata.Annotations?.ContainsKey(RequesterStamp.Username) == true)
                {
                    return;
                }

                throw new InvalidOperationException("a dry-run create through the webhooks came back without the requester stamp");
            }
            catch (k8s.Autorest.HttpOperationException) when (DateTime.UtcNow < deadline)
            {
                // Not reachable yet (no caBundle, or the listener not up).
                await Task.Delay(250);
            }
            catch (k8s.Autorest.HttpOperationException e)
            {
                throw new TimeoutException($"kube-apiserver could not call the admission webhooks within 60 s: {e.Response.Content}\n{OperatorLog()}");
            }
        }
    }

    /// <summary>The chart's Service of the extension API subresources.kubecapture.io.</summary>
    public static string SubresourcesServiceName => $"{KubeCaptureInstall.Release}-kubecapture-subresources";

    /// <summary><c>kubectl get --raw PATH &gt; FILE</c> as <paramref name="token"/>'s user: exit code, stderr, the file.</summary>
    public async Task<(int ExitCode, string Stderr, string File)> KubectlRawAsync(string token, string path)
    {
        var (done, file) = StartKubectlRaw(token, path);
        var (exitCode, stderr) = await done;
        return (exitCode, stderr, file);
    }

    /// <summary>Starts <c>kubectl get --raw PATH &gt; FILE</c> (kubectl writes the body as it arrives): when it is done, and the file.</summary>
    public (Task<(int ExitCode, string Stderr)> Done, string File) StartKubectlRaw(string token, string path)
    {
        var file = Path.Combine(WorkDirectory, Guid.NewGuid().ToString("N") + ".out");
        var kubeconfig = Install.Server.WriteKubeconfig(token, "raw-" + Guid.NewGuid().ToString("N")[..8]);
        return (RunAsync(), file);

        async Task<(int, string)> RunAsync()
        {
            var result = await HostCommand.RunAsync("sh", ["-c", "exec \"$0\" --kubeconfig \"$1\" get --raw \"$2\" > \"$3\"", Tools.Kubectl, kubeconfig, path, file], TimeSpan.FromSeconds(90));
            return (result.ExitCode, result.Stderr);
        }
    }

    /// <summary>The operator's settings that serve the extension API on <paramref name="port"/> of the node address, as the chart's APIService and Service reach it.</summary>
    protected void ServeSubresources(Dictionary<string, string> settings, int port)
    {
        settings["Subresources:Enabled"] = "true";
        settings["Subresources:Url"] = string.Create(System.Globalization.CultureInfo.InvariantCulture, $"https://{HttpsAddress}:{port}");
        settings["ServingCertificate:DnsNames:1"] = $"{SubresourcesServiceName}.{KubeCaptureInstall.Namespace}.svc";
        settings["ServingCertificate:ApiServices:0"] = OperatorPermissions.SubresourcesApiService;
    }

    /// <summary>Until kube-apiserver finds the APIService Available (the operator published its CA and answers discovery).</summary>
    protected async Task WaitForSubresourcesAsync()
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            var apiService = await Admin.ApiregistrationV1.ReadAPIServiceAsync(OperatorPermissions.SubresourcesApiService);
            var available = apiService.Status?.Conditions?.FirstOrDefault(c => c.Type == "Available");
            if (available?.Status == "True")
            {
                return;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"the APIService did not become Available: {available?.Reason}: {available?.Message}\n{OperatorLog()}");
            }

            await Task.Delay(250);
        }
    }

    /// <summary>Adds to the operator's settings before it starts (a fixture that turns more of it on).</summary>
    protected virtual Task ConfigureAsync(Dictionary<string, string> settings) => Task.CompletedTask;

    /// <summary>After the operator and the kubelet started.</summary>
    protected virtual Task StartedAsync() => Task.CompletedTask;

    /// <summary>The chart installed into the server these tests use (the shared one of the test run).</summary>
    protected virtual Task<KubeCaptureInstall> InstallAsync() => KubeCaptureInstall.SharedAsync();

    /// <summary>Ingest:TokenDelivery of this cluster's operator.</summary>
    protected virtual string TokenDelivery => "Secret";

    /// <summary>A namespace of the test's own (with Pod Security labels, if given).</summary>
    public Task<string> CreateNamespaceAsync(string prefix, IDictionary<string, string>? labels = null)
    {
        KubeApiServer.Require();
        ContainerImages.RequireOrSkip();
        return Install.Server.CreateNamespaceAsync(prefix, labels);
    }

    /// <summary>A Running pod played by a new network namespace (a client namespace beside it sends traffic).</summary>
    public async Task<PodNetwork> StartPodAsync(string ns, string name, IDictionary<string, string>? labels = null)
    {
        var network = await PodNetwork.CreateAsync();
        lock (networks)
        {
            networks.Add(network);
        }

        await network.ConnectToNodeAsync(); // the default route to the node reaches the NodeService address
        Kubelet.AttachNetwork(ns, name, network);
        await ((ApiServerPods)Kubelet.Pods).StartPodAsync(ns, name, network.NodeLinkAddress!, labels);
        return network;
    }

    /// <summary>A network namespace that reaches the node (and so the ingest) by a link of its own, but plays no pod: an attacker's.</summary>
    public PodNetwork CreateNodeReachingNetwork()
    {
        var network = PodNetwork.Create();
        lock (networks)
        {
            networks.Add(network);
        }

        network.ConnectToNode();
        return network;
    }

    /// <summary>
    /// Applies a capture (as <paramref name="requester"/>, by default the admin) and waits until it is
    /// Running and its agent on each of <paramref name="pods"/> (by default the spec's one pod)
    /// captures (printed "listening on"): traffic sent after this is in the pcap.
    /// </summary>
    public async Task<PacketCapture> StartCaptureAsync(string ns, string name, PacketCaptureSpec spec, TimeSpan timeout, string[]? pods = null, IKubernetes? requester = null)
    {
        var created = await (requester ?? Admin).CreatePacketCaptureAsync(ns, name, spec);
        await Admin.WaitForPhaseAsync(ns, name, CapturePhase.Running, timeout);
        var container = EphemeralContainerSpec.ContainerName(created.Metadata.Uid);
        foreach (var pod in pods ?? [spec.Target.PodName ?? throw new ArgumentException("name the pods of a capture by selector", nameof(pods))])
        {
            await Kubelet.WaitUntilListeningAsync(ns, pod, container, timeout);
        }

        return created;
    }

    /// <summary>The operator's audit lines for one capture, once one of event <paramref name="last"/> has been printed (within 90 s).</summary>
    public async Task<List<JsonElement>> WaitForAuditAsync(string captureUid, string last)
    {
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (true)
        {
            var lines = Operator.Output.Split('\n')
                .Where(l => l.StartsWith("{\"apiVersion\":\"audit.kubecapture.io/v1\"", StringComparison.Ordinal))
                .Select(l => JsonDocument.Parse(l).RootElement.Clone())
                .Where(l => l.GetProperty("captureUid").GetString() == captureUid)
                .ToList();
            if (lines.Any(l => l.GetProperty("event").GetString() == last))
            {
                return lines;
            }

            Assert.True(DateTime.UtcNow < deadline, $"no '{last}' audit line for {captureUid}; lines so far:\n{string.Join('\n', lines)}\n{OperatorLog()}");
            await Task.Delay(200);
        }
    }

    /// <summary>The operator's last log lines, for failure messages.</summary>
    public string OperatorLog(int lines = 40) => string.Join('\n', Operator.Output.Split('\n').TakeLast(lines));

    /// <summary>The capture containers of a pod, as the server holds them.</summary>
    public async Task<IReadOnlyList<V1EphemeralContainer>> CaptureContainersAsync(string ns, string pod) =>
        (await Admin.CoreV1.ReadNamespacedPodAsync(pod, ns)).Spec.EphemeralContainers?.ToList() ?? [];

    /// <summary>Downloads a stored pcap from S3 into the work directory, as a user with storage credentials would.</summary>
    public Task<string> DownloadAsync(CaptureArtifact artifact) => DownloadAsync(artifact.Uri, ".pcap");

    /// <summary>Downloads any object of the bucket (an s3:// URI) into the work directory.</summary>
    public async Task<string> DownloadAsync(string uri, string extension)
    {
        var prefix = $"s3://{S3.Bucket}/";
        Assert.StartsWith(prefix, uri, StringComparison.Ordinal);
        var path = Path.Combine(WorkDirectory, Guid.NewGuid().ToString("N") + extension);
        using var client = new MinioClient()
            .WithEndpoint("127.0.0.1", S3.Port)
            .WithCredentials(S3rverFixture.AccessKey, S3rverFixture.SecretKey)
            .WithSSL(false)
            .Build();
        // s3rver answers a HEAD of the bucket with an empty 500 now and then while other captures
        // write to it (the seven concurrent both-ends scenarios), and Minio 7.0.0 turns that answer
        // into a NullReferenceException. S3 clients retry a 500 (AWS SDK's standard mode does), so
        // this one does too, from the first byte; a missing object is never retried.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await using var file = File.Create(path);
                await client.GetObjectAsync(new GetObjectArgs()
                    .WithBucket(S3.Bucket)
                    .WithObject(uri[prefix.Length..])
                    .WithCallbackStream(async (stream, cancellationToken) => await stream.CopyToAsync(file, cancellationToken)));
                return path;
            }
            catch (Exception e) when (attempt < 4 && e is not Minio.Exceptions.ObjectNotFoundException and not Minio.Exceptions.BucketNotFoundException)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(200 * attempt));
            }
        }
    }

    public virtual async Task DisposeAsync()
    {
        Kubelet?.Dispose();
        if (Operator is not null)
        {
            await Operator.DisposeAsync();
        }

        if (s3 is not null)
        {
            await s3.DisposeAsync();
        }

        foreach (var network in networks)
        {
            network.Dispose();
        }

        service?.Dispose();
        httpsAddress?.Dispose();
        traces?.Dispose();
        Admin?.Dispose();
        if (work is not null)
        {
            Directory.Delete(work, recursive: true);
        }
    }
}

/// <summary>
/// The test classes that share the one cluster of the run's shared kube-apiserver (one operator
/// process, one Lease, and it serves the extension API too: <see cref="Subresources.SubresourcesCluster"/>):
/// they run one after another, so no second operator reconciles the same captures.
/// </summary>
[CollectionDefinition(Name)]
public sealed class ApiServerClusterCollection : ICollectionFixture<Subresources.SubresourcesCluster>
{
    public const string Name = "kube-apiserver cluster";
}

/// <summary>An <see cref="ApiServerCluster"/> on a kube-apiserver and etcd of its own, which its tests may stop and start.</summary>
public class OwnApiServerCluster : ApiServerCluster
{
    private KubeApiServer? server;

    public KubeApiServer Server => server ?? throw new InvalidOperationException("not started");

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        if (server is not null)
        {
            await server.DisposeAsync();
        }
    }

    /// <summary>The chart's values this cluster installs with (helm --set), beyond the defaults.</summary>
    protected virtual string[] HelmSet => [];

    protected override async Task<KubeCaptureInstall> InstallAsync()
    {
        server = await KubeApiServer.StartAsync();
        return await KubeCaptureInstall.InstallAsync(server, HelmSet);
    }
}
