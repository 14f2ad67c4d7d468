using System.Diagnostics;
using System.Net;
using System.Text;
using k8s;
using k8s.Models;
using KubeCapture.Contracts;
using KubeCapture.Operator.Subresources;
using KubeCapture.Operator.Tests.KubectlPlugin;
using KubeCapture.Testing.Containers;
using KubeCapture.Testing.Kubernetes;
using KubeCapture.Testing.Processes;
using KubeCapture.Testing.RealNode;
using KubeCapture.Testing.S3;
using Xunit.Sdk;

namespace KubeCapture.Operator.Tests.RealNode;

/// <summary>
/// The product as users run it, on a real one-node cluster (<see cref="NodeProcess"/>: kubelet,
/// containerd, CNI, kube-proxy, scheduler, controller-manager, cluster DNS beside kube-apiserver):
/// the two images of scripts/images.sh imported into containerd, Ceph RGW reachable from the pods at
/// the node IP as the S3, and the chart installed with <c>helm install</c> exactly as README says for
/// a cluster without a public registry (image repositories and pull policy, the storage). The kubelet
/// starts the operator pod from its image and every capture container from the agent image; nothing
/// plays the kubelet. Users alice (bound to the built-in <c>edit</c> role, which the real
/// controller-manager aggregates) and bob (<c>view</c>) reach it with kubectl and kubectl-capture.
/// Once per test run (the collection's tests run one after another); stopping the node at the end
/// fails the run if anything it changed on the host could not be undone.
/// </summary>
public sealed class RealNodeCluster : IAsyncLifetime
{
    public const string Release = "kubecapture";
    public const string Namespace = "kubecapture-system";
    public const string Deployment = "kubecapture";
    public const string CredentialsSecret = "kubecapture-s3";
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(3);
    private NodeProcess? node;
    private CephRgwFixture? s3;
    private string? skipped;
    private string? work;

    public NodeState Node => node?.State ?? throw new InvalidOperationException("no node");

    public IKubernetes Admin { get; private set; } = null!;

    public CephRgwFixture S3 => s3 ?? throw new InvalidOperationException("no S3");

    public string WorkDirectory => work ?? throw new InvalidOperationException("not started");

    /// <summary>How long the node took to be Ready, and the chart to be installed and serving (for the CI time report).</summary>
    public string Timings { get; private set; } = "";

    public static string AgentImage => $"localhost/kubecapture/agent:{ContainerImages.Version}";

    public static string OperatorImage => $"localhost/kubecapture/operator:{ContainerImages.Version}";

    /// <summary>The image archives scripts/images.sh writes (dist/).</summary>
    public static IReadOnlyList<string> Archives =>
        [.. new[] { "agent", "operator" }.Select(i => Path.Combine(Tools.RepositoryRoot, "dist", $"kubecapture-{i}-{ContainerImages.Version}.oci.tar"))];

    /// <summary>
    /// The helm values a user of a cluster without a public registry sets, as README's install says:
    /// the image repositories and pull policy (images loaded into the node), and the storage.
    /// </summary>
    public string[] InstallValues =>
    [
        "--set", "image.repository=localhost/kubecapture/operator", "--set", "image.pullPolicy=Never",
        "--set", "agent.image.repository=localhost/kubecapture/agent",
        "--set", $"storage.endpoint={new Uri(S3.Endpoint).Authority}", "--set", "storage.useTls=false",
        "--set", $"storage.bucket={S3.Bucket}", "--set", $"storage.credentialsSecret={CredentialsSecret}",
    ];

    public async Task InitializeAsync()
    {
        var missing = NodeProcess.Missing ?? Archives.Where(a => !File.Exists(a)).Select(a => $"{a} is missing: run 'bash scripts/images.sh' (as root)").FirstOrDefault()
            ?? CephRgwFixture.MissingReason;
        if (missing is not null)
        {
            if (ContainerImages.RequiredByCi)
            {
                throw new InvalidOperationException("CI=true and " + missing);
            }

            skipped = missing;
            return;
        }

        work = Directory.CreateTempSubdirectory("kcR-").FullName;
        var clock = Stopwatch.StartNew();
        try
        {
            node = await NodeProcess.StartAsync(Archives, Patience);
        }
        catch (NodeBusyException e) when (!ContainerImages.RequiredByCi)
        {
            skipped = e.Message;
            return;
        }

        var started = clock.Elapsed;
        Admin = new k8s.Kubernetes(KubernetesClientConfiguration.BuildConfigFromConfigFile(Node.AdminKubeconfig));
        s3 = await CephRgwFixture.StartAtAsync(Node.NodeIp);
        await Admin.CoreV1.CreateNamespaceAsync(new V1Namespace { Metadata = new V1ObjectMeta { Name = Namespace } });
        await Admin.CoreV1.CreateNamespacedSecretAsync(new V1Secret
        {
            Metadata = new V1ObjectMeta { Name = CredentialsSecret },
            StringData = new Dictionary<string, string> { ["accessKey"] = CephRgwFixture.AccessKey, ["secretKey"] = CephRgwFixture.SecretKey },
        }, Namespace);
        await InstallAsync();
        Timings = $"node Ready in {started.TotalSeconds:0.0} s, the chart installed and serving {(clock.Elapsed - started).TotalSeconds:0.0} s later";
    }

    public async Task DisposeAsync()
    {
        Admin?.Dispose();
        if (s3 is not null)
        {
            await s3.DisposeAsync();
        }

        if (node is not null)
        {
            var (exit, output) = await node.StopAsync();
            await node.DisposeAsync();
            if (exit != 0)
            {
                throw new InvalidOperationException($"the node did not stop cleanly (exit {exit}): its host changes were not all undone:\n{output}");
            }
        }

        if (work is not null)
        {
            Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>Skips the calling test (one line: what is missing), or fails it under CI=true.</summary>
    public void Require()
    {
        if (skipped is not null)
        {
            throw new Xunit.SkipException(skipped);
        }
    }

    /// <summary><c>helm install</c> as README says, then until the operator pod is Ready, the APIService Available and the webhooks reachable.</summary>
    public async Task InstallAsync()
    {
        var installed = await HelmAsync(["install", Release, Tools.Chart, "-n", Namespace, .. InstallValues]);
        Assert.True(installed.ExitCode == 0, installed.Stdout + installed.Stderr);
        await WaitForOperatorAsync();
    }

    /// <summary>Until a Ready operator pod runs, kube-apiserver finds the extension API Available and calls the webhooks (a dry-run create comes back stamped).</summary>
    public async Task<V1Pod> WaitForOperatorAsync(string? notPod = null)
    {
        var pod = await WaitForAsync("the operator pod Ready", async () =>
        {
            var pods = await Admin.CoreV1.ListNamespacedPodAsync(Namespace, labelSelector: $"app.kubernetes.io/instance={Release}");
            return pods.Items.FirstOrDefault(p => p.Metadata.Name != notPod && p.Metadata.DeletionTimestamp is null
                && p.Status?.Conditions?.Any(c => c.Type == "Ready" && c.Status == "True") == true);
        });
        await WaitForAsync("the APIService Available", async () =>
        {
            var service = await Admin.ApiregistrationV1.ReadAPIServiceAsync($"{ExtensionApi.Version}.{ExtensionApi.Group}");
            return service.Status?.Conditions?.Any(c => c.Type == "Available" && c.Status == "True") == true ? service : null;
        });
        await WaitForAsync("the admission webhooks answering", async () =>
        {
            var probe = new KubeCapture.Contracts.Resources.PacketCapture
            {
                Metadata = new V1ObjectMeta { Name = "webhook-probe", NamespaceProperty = Namespace },
                Spec = new KubeCapture.Contracts.Resources.PacketCaptureSpec { Reason = "is the webhook up?", Target = new KubeCapture.Contracts.Resources.CaptureTarget { PodName = "none" }, Duration = "1s" },
            };
            try
            {
                var stamped = await Admin.CustomObjects.CreateNamespacedCustomObjectAsync<KubeCapture.Contracts.Resources.PacketCapture>(probe, KubeCapture.Contracts.Resources.PacketCapture.Group, KubeCapture.Contracts.Resources.PacketCapture.Version, Namespace, KubeCapture.Contracts.Resources.PacketCapture.Plural, dryRun: "All");
                return stamped.Metadata.Annotations?.ContainsKey(KubeCapture.Operator.Provenance.RequesterStamp.Username) == true ? stamped : null;
            }
            catch (k8s.Autorest.HttpOperationException)
            {
                return null;
            }
        });
        return pod;
    }

    /// <summary>A namespace of the test's own; <paramref name="edit"/> and <paramref name="view"/> users bound to the built-in roles there.</summary>
    public async Task<string> CreateNamespaceAsync(string prefix, IDictionary<string, string>? labels = null, string? edit = "alice", string? view = "bob")
    {
        Require();
        var name = $"{prefix}-{Guid.NewGuid().ToString("N")[..5]}";
        await Admin.CoreV1.CreateNamespaceAsync(new V1Namespace { Metadata = new V1ObjectMeta { Name = name, Labels = labels } });
        foreach (var (user, role) in new[] { (edit, "edit"), (view, "view") })
        {
            if (user is not null)
            {
                await Admin.RbacAuthorizationV1.CreateNamespacedRoleBindingAsync(new V1RoleBinding
                {
                    Metadata = new V1ObjectMeta { Name = $"{user}-{role}" },
                    RoleRef = new V1RoleRef { ApiGroup = "rbac.authorization.k8s.io", Kind = "ClusterRole", Name = role },
                    Subjects = [new Rbacv1Subject { Kind = "User", Name = user, ApiGroup = "rbac.authorization.k8s.io" }],
                }, name);
            }
        }

        return name;
    }

    /// <summary>
    /// A web server Deployment (busybox httpd on 8080, behind a Service <paramref name="name"/> on port
    /// 80) and a client pod; returns the web pod and the client pod once both run.
    /// </summary>
    public async Task<(V1Pod Web, V1Pod Client)> StartWebAndClientAsync(string ns, string name = "web", IDictionary<string, string>? extraLabels = null, V1SecurityContext? security = null, V1PodSecurityContext? podSecurity = null)
    {
        var webLabels = new Dictionary<string, string> { ["app"] = name };
        var clientLabels = new Dictionary<string, string> { ["app"] = "client" };
        foreach (var (key, value) in extraLabels ?? new Dictionary<string, string>())
        {
            webLabels[key] = value;
            clientLabels[key] = value;
        }

        await Admin.AppsV1.CreateNamespacedDeploymentAsync(new V1Deployment
        {
            Metadata = new V1ObjectMeta { Name = name },
            Spec = new V1DeploymentSpec
            {
                Replicas = 1,
                Selector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["app"] = name } },
                Template = new V1PodTemplateSpec
                {
                    Metadata = new V1ObjectMeta { Labels = webLabels },
                    Spec = new V1PodSpec
                    {
                        SecurityContext = podSecurity,
                        Containers = [Busybox("web", "mkdir -p /tmp/www && echo hello from the web pod > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www", security)],
                    },
                },
            },
        }, ns);
        await Admin.CoreV1.CreateNamespacedServiceAsync(new V1Service
        {
            Metadata = new V1ObjectMeta { Name = name },
            Spec = new V1ServiceSpec { Selector = new Dictionary<string, string> { ["app"] = name }, Ports = [new V1ServicePort { Port = 80, TargetPort = 8080 }] },
        }, ns);
        await Admin.CoreV1.CreateNamespacedPodAsync(new V1Pod
        {
            Metadata = new V1ObjectMeta { Name = "client", Labels = clientLabels },
            Spec = new V1PodSpec { SecurityContext = podSecurity, Containers = [Busybox("client", "exec sleep 3600", security)], TerminationGracePeriodSeconds = 1 },
        }, ns);
        var web = await WaitForRunningAsync(ns, $"app={name}");
        var client = await WaitForRunningAsync(ns, "app=client");
        return (web, client);
    }

    /// <summary>HTTP requests from the client pod to <paramref name="host"/> (a Service name or an address), as <c>kubectl exec</c> runs them.</summary>
    public async Task<CommandResult> RequestsAsync(string ns, string host, int count, int port = 80)
    {
        var request = $"for i in $(seq {count}); do printf 'GET / HTTP/1.0\\r\\nHost: {host}\\r\\n\\r\\n' | nc -w 5 {host} {port} || exit 1; done";
        return await KubectlAsync(Node.AdminKubeconfig, ["exec", "-n", ns, "client", "--", "sh", "-c", request]);
    }

    /// <summary>Pings from the client pod (echo requests and replies: two packets each).</summary>
    public Task<CommandResult> PingAsync(string ns, string address, int count) =>
        KubectlAsync(Node.AdminKubeconfig, ["exec", "-n", ns, "client", "--", "ping", "-c", count.ToString(System.Globalization.CultureInfo.InvariantCulture), "-i", "0.2", "-W", "5", address]);

    /// <summary>A kubeconfig of a static user (token USER-token), verifying the server.</summary>
    public string KubeconfigOf(string user) =>
        KubeconfigFile.Write(Path.Combine(WorkDirectory, $"{user}.kubeconfig"), Node.ApiServerUrl, user, NodePki.UserToken(user), Node.ServingCaPem);

    public Task<CommandResult> KubectlAsync(string kubeconfig, IEnumerable<string> arguments, string? stdin = null) =>
        HostCommand.RunAsync(Tools.Kubectl, ["--kubeconfig", kubeconfig, .. arguments], TimeSpan.FromSeconds(120), stdin);

    /// <summary>helm as the cluster admin (its cache under a HOME of its own).</summary>
    public Task<CommandResult> HelmAsync(IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo(Tools.Helm) { Environment = { ["HOME"] = Path.Combine(WorkDirectory, "helm-home") } };
        foreach (var argument in (string[])["--kubeconfig", Node.AdminKubeconfig, .. arguments])
        {
            start.ArgumentList.Add(argument);
        }

        return HostCommand.RunAsync(start, Patience);
    }

    /// <summary>Runs <c>kubectl-capture --kubeconfig K -n NS ARGS</c> in the work directory.</summary>
    public Task<CommandResult> PluginAsync(string kubeconfig, string ns, params string[] args)
    {
        var start = new ProcessStartInfo(KubectlCaptureCluster.Binary) { WorkingDirectory = WorkDirectory };
        foreach (var arg in new[] { "--kubeconfig", kubeconfig, "-n", ns }.Concat(args))
        {
            start.ArgumentList.Add(arg);
        }

        return HostCommand.RunAsync(start, TimeSpan.FromSeconds(120));
    }

    /// <summary>The stored object (an s3:// URI) as the bucket holds it, read from RGW.</summary>
    public async Task<byte[]> StoredAsync(string uri)
    {
        var prefix = $"s3://{S3.Bucket}/";
        Assert.StartsWith(prefix, uri, StringComparison.Ordinal);
        return await S3.ReadObjectAsync(uri[prefix.Length..]) ?? throw new XunitException($"{uri} is not in the bucket");
    }

    /// <summary>What the agent printed, as <c>kubectl logs POD -c CONTAINER</c> shows it (through the kubelet).</summary>
    public async Task<string> LogsAsync(string ns, string pod, string container) =>
        (await KubectlAsync(Node.AdminKubeconfig, ["logs", "-n", ns, pod, "-c", container])).Stdout;

    /// <summary>Until the capture container's agent captures ("listening on" in its log): traffic after this is in the pcap.</summary>
    public Task WaitUntilListeningAsync(string ns, string pod, string container) =>
        WaitForAsync($"{container} in {ns}/{pod} listening", async () =>
            (await LogsAsync(ns, pod, container)).Contains("listening on", StringComparison.Ordinal) ? container : null);

    /// <summary>Until the kubelet reports the capture container terminated (it does so a moment after the agent exits); returns the pod as then.</summary>
    public Task<V1Pod> WaitForCaptureContainerExitAsync(string ns, string pod, string container) =>
        WaitForAsync($"{container} in {ns}/{pod} terminated", async () =>
        {
            var current = await Admin.CoreV1.ReadNamespacedPodAsync(pod, ns);
            return current.Status?.EphemeralContainerStatuses?.Any(s => s.Name == container && s.State?.Terminated is not null) == true ? current : null;
        });

    public async Task<V1Pod> WaitForRunningAsync(string ns, string selector) =>
        await WaitForAsync($"a Running, Ready pod {selector} in {ns}", async () =>
            (await Admin.CoreV1.ListNamespacedPodAsync(ns, labelSelector: selector)).Items.FirstOrDefault(p =>
                p.Metadata.DeletionTimestamp is null && p.Status?.Phase == "Running" && p.Status.Conditions?.Any(c => c.Type == "Ready" && c.Status == "True") == true));

    public static async Task<T> WaitForAsync<T>(string what, Func<Task<T?>> ready, TimeSpan? timeout = null)
        where T : class
    {
        var deadline = DateTime.UtcNow + (timeout ?? Patience);
        while (true)
        {
            if (await ready() is { } done)
            {
                return done;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"no {what} within {(timeout ?? Patience).TotalSeconds} s");
            }

            await Task.Delay(250);
        }
    }

    /// <summary>The Secret's entry as text.</summary>
    public async Task<string> SecretTextAsync(string ns, string name, string key) =>
        Encoding.ASCII.GetString((await Admin.CoreV1.ReadNamespacedSecretAsync(name, ns)).Data[key]);

    private static V1Container Busybox(string name, string script, V1SecurityContext? security) => new()
    {
        Name = name,
        Image = NodeLayout.BusyboxImage,
        ImagePullPolicy = "Never",
        Command = ["sh", "-c", script],
        SecurityContext = security,
    };
}

/// <summary>The tests on the one real node of the run: one after another.</summary>
[CollectionDefinition(Name)]
public sealed class RealNodeCollection : ICollectionFixture<RealNodeCluster>
{
    public const string Name = "real node";
}
