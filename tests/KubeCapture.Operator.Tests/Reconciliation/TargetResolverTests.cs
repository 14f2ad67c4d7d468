using k8s.Models;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Resources;
using KubeCapture.Testing.Kubernetes;

namespace KubeCapture.Operator.Tests.Reconciliation;

public sealed class TargetResolverTests : IAsyncLifetime
{
    private KubernetesApiEmulator emulator = null!;

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
    }

    public async Task DisposeAsync() => await emulator.DisposeAsync();

    [Fact]
    public async Task A_selector_finds_matching_pods_in_the_captures_own_namespace_only()
    {
        using var client = emulator.CreateClient();
        var resolver = new TargetResolver(client, new CapturePolicy());

        var found = await resolver.ResolveAsync(Capture(new V1LabelSelector
        {
            MatchLabels = new Dictionary<string, string> { ["app"] = "checkout" },
            MatchExpressions = [new V1LabelSelectorRequirement { Key = "tier", OperatorProperty = "In", Values = ["web", "api"] }],
        }), CancellationToken.None);

        Assert.True(found.Found, found.Message);
        Assert.Equal(["checkout-1", "checkout-2"], found.Pods.Select(p => p.Metadata.Name));
    }

    [Fact]
    public async Task More_pods_than_policy_allows_is_TooManyPods_and_none_is_NoPodsMatched()
    {
        using var client = emulator.CreateClient();
        var resolver = new TargetResolver(client, new CapturePolicy { MaxPodsPerCapture = 1 });

        var tooMany = await resolver.ResolveAsync(Capture(new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["app"] = "checkout" } }), CancellationToken.None);
        var none = await resolver.ResolveAsync(Capture(new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["app"] = "nothing" } }), CancellationToken.None);

        Assert.Equal("TooManyPods", tooMany.Reason);
        Assert.Contains("matches 2 pods; policy allows at most 1", tooMany.Message, StringComparison.Ordinal);
        Assert.Equal("NoPodsMatched", none.Reason);
    }

    [Fact]
    public async Task A_pod_not_on_Linux_is_NotLinux()
    {
        using var client = emulator.CreateClient();
        var resolver = new TargetResolver(client, new CapturePolicy());

        var windows = await resolver.ResolveAsync(Capture(new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["app"] = "win" } }), CancellationToken.None);

        Assert.Equal("NotLinux", windows.Reason);
    }

    private static PacketCapture Capture(V1LabelSelector selector) => new()
    {
        Metadata = new V1ObjectMeta { Name = "c", NamespaceProperty = "shop", Uid = Guid.NewGuid().ToString() },
        Spec = new PacketCaptureSpec { Reason = "t", Duration = "10s", Target = new CaptureTarget { PodSelector = selector } },
    };
}
