using k8s.Models;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Provenance;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Watcher;
using KubeCapture.Testing.Kubernetes;
using Microsoft.Extensions.Logging.Abstractions;

namespace KubeCapture.Operator.Tests.Reconciliation;

/// <summary>The resolver reads the operator's pod cache, filled by a real list+watch of the emulator.</summary>
public sealed class TargetResolverTests : IAsyncLifetime
{
    private readonly CancellationTokenSource stop = new();
    private KubernetesApiEmulator emulator = null!;
    private k8s.IKubernetes client = null!;
    private ClusterCache cluster = null!;
    private Task watching = Task.CompletedTask;

    public async Task InitializeAsync()
    {
        emulator = await KubernetesApiEmulator.StartAsync();
        emulator.AddNamespace("shop");
        emulator.AddNamespace("other");
        emulator.AddPod("shop", "checkout-1", labels: new Dictionary<string, string> { ["app"] = "checkout", ["tier"] = "web" });
        emulator.AddPod("shop", "checkout-2", labels: new Dictionary<string, string> { ["app"] = "checkout", ["tier"] = "web" });
        emulator.AddPod("shop", "ledger-1", labels: new Dictionary<string, string> { ["app"] = "ledger" });
        emulator.AddPod("other", "checkout-9", labels: new Dictionary<string, string> { ["app"] = "checkout" });
        emulator.AddPod("shop", "win-1", labels: new Dictionary<string, string> { ["app"] = "win" }, os: "windows");
        client = emulator.CreateClient();
        cluster = new ClusterCache(client, NullLogger.Instance, TimeProvider.System);
        watching = cluster.RunAsync(stop.Token);
        await cluster.Synced.WaitAsync(TimeSpan.FromSeconds(10));
    }

    public async Task DisposeAsync()
    {
        await stop.CancelAsync();
        await watching;
        client.Dispose();
        stop.Dispose();
        await emulator.DisposeAsync();
    }

    [Fact]
    public async Task A_selector_finds_matching_pods_in_the_captures_own_namespace_only()
    {
        var resolver = new TargetResolver(cluster, new CapturePolicy());

        var found = await resolver.ResolveAsync(Capture(new V1LabelSelector
        {
            MatchLabels = new Dictionary<string, string> { ["app"] = "checkout" },
            MatchExpressions = [new V1LabelSelectorRequirement { Key = "tier", OperatorProperty = "In", Values = ["web", "api"] }],
        }), CancellationToken.None);

        Assert.True(found.Found, found.Message);
        Assert.Equal(["checkout-1", "checkout-2"], found.Pods.Select(p => p.Metadata.Name));
        Assert.DoesNotContain(emulator.Requests, r => r.StartsWith("GET /api/v1/namespaces/shop/pods", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_pod_created_after_the_cache_was_filled_is_found_by_name_with_one_live_read()
    {
        emulator.AddPod("shop", "brand-new");
        var resolver = new TargetResolver(cluster, new CapturePolicy());

        var found = await resolver.ResolveAsync(new PacketCapture
        {
            Metadata = new V1ObjectMeta { Name = "c", NamespaceProperty = "shop", Uid = Guid.NewGuid().ToString() },
            Spec = new PacketCaptureSpec { Reason = "t", Duration = "10s", Target = new CaptureTarget { PodName = "brand-new" } },
        }, CancellationToken.None);

        Assert.True(found.Found, found.Message);
        Assert.Equal("brand-new", Assert.Single(found.Pods).Metadata.Name);
    }

    [Fact]
    public void The_pod_cache_keeps_only_the_fields_the_controller_reads()
    {
        var pod = cluster.Pods.Get("shop/checkout-1")!;

        Assert.Equal(("checkout-1", "shop", "checkout"), (pod.Metadata.Name, pod.Metadata.NamespaceProperty, pod.Metadata.Labels["app"]));
        Assert.Equal("Running", pod.Status.Phase);
        Assert.NotEmpty(PodAddresses.Of(pod));
        Assert.Empty(pod.Spec.Containers);
        Assert.Null(pod.Metadata.ManagedFields);
        Assert.Null(pod.Status.Conditions);
    }

    [Fact]
    public async Task More_pods_than_policy_allows_is_TooManyPods_and_none_is_NoPodsMatched()
    {
        var resolver = new TargetResolver(cluster, new CapturePolicy { MaxPodsPerCapture = 1 });

        var tooMany = await resolver.ResolveAsync(Capture(new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["app"] = "checkout" } }), CancellationToken.None);
        var none = await resolver.ResolveAsync(Capture(new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["app"] = "nothing" } }), CancellationToken.None);

        Assert.Equal("TooManyPods", tooMany.Reason);
        Assert.Contains("matches 2 pods; policy allows at most 1", tooMany.Message, StringComparison.Ordinal);
        Assert.Equal("NoPodsMatched", none.Reason);
    }

    [Fact]
    public async Task A_pod_not_on_Linux_is_NotLinux()
    {
        var resolver = new TargetResolver(cluster, new CapturePolicy());

        var windows = await resolver.ResolveAsync(Capture(new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["app"] = "win" } }), CancellationToken.None);

        Assert.Equal("NotLinux", windows.Reason);
    }

    [Fact]
    public async Task A_pod_the_cache_still_shows_Pending_that_the_server_has_Running_is_found_with_one_live_read()
    {
        var pending = emulator.AddPod("shop", "starting", phase: "Pending");
        // A cache one watch event behind: it holds the pod as it was, Pending; the kubelet has since reported it Running.
        var behind = new ClusterCache(client, NullLogger.Instance, TimeProvider.System);
        behind.Pods.Offer(k8s.KubernetesJson.Deserialize<V1Pod>(pending.ToJsonString()));
        var running = pending.DeepClone().AsObject();
        running["status"]!["phase"] = "Running";
        emulator.Store.Update(ResourceType.Pods, "shop", "starting", running, "status");
        var reads = emulator.Requests.Count(r => r.StartsWith("GET /api/v1/namespaces/shop/pods/starting", StringComparison.Ordinal));

        var found = await new TargetResolver(behind, new CapturePolicy()).ResolveAsync(Named("starting"), CancellationToken.None);

        Assert.True(found.Found, found.Message);
        Assert.Equal("Running", Assert.Single(found.Pods).Status.Phase);
        Assert.Equal(reads + 1, emulator.Requests.Count(r => r.StartsWith("GET /api/v1/namespaces/shop/pods/starting", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task A_pod_the_server_too_has_Pending_is_PodNotRunning()
    {
        emulator.AddPod("shop", "stuck", phase: "Pending");
        var resolver = new TargetResolver(cluster, new CapturePolicy());

        var found = await resolver.ResolveAsync(Named("stuck"), CancellationToken.None);

        Assert.Equal("PodNotRunning", found.Reason);
        Assert.Equal("pod 'stuck' is Pending, not Running", found.Message);
    }

    private static PacketCapture Named(string pod) => new()
    {
        Metadata = new V1ObjectMeta { Name = "c", NamespaceProperty = "shop", Uid = Guid.NewGuid().ToString() },
        Spec = new PacketCaptureSpec { Reason = "t", Duration = "10s", Target = new CaptureTarget { PodName = pod } },
    };

    private static PacketCapture Capture(V1LabelSelector selector) => new()
    {
        Metadata = new V1ObjectMeta { Name = "c", NamespaceProperty = "shop", Uid = Guid.NewGuid().ToString() },
        Spec = new PacketCaptureSpec { Reason = "t", Duration = "10s", Target = new CaptureTarget { PodSelector = selector } },
    };
}
