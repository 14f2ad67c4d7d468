using System.Net;
using System.Text.Json;
using k8s;
using k8s.Autorest;
using k8s.Models;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Finalizer;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Storage;
using KubeCapture.Operator.Tests.EndToEnd;
using KubeCapture.Operator.Tests.Subresources;
using KubeCapture.Testing.Kubernetes;

namespace KubeCapture.Operator.Tests.Admission;

/// <summary>
/// Issue 20, 5: <c>kubectl patch pcap X --type=json -p '[{"op":"remove","path":"/metadata/finalizers"}]'</c>
/// then <c>kubectl delete pcap X</c> skipped the stop, the audit line and the lock. On the real
/// kube-apiserver with the chart's webhooks: only the operator removes its finalizer, a cluster
/// admin included is refused unless the capture says why in the break-glass annotation (audited),
/// and a capture deleted that way is still recorded, its agent told to stop, and its pcap stored
/// with its requester.
/// </summary>
[Collection(ApiServerClusterCollection.Name)]
public sealed class FinalizerGuardEndToEndTests(SubresourcesCluster cluster)
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(90);
    private const string RemoveFinalizers = """[{"op":"remove","path":"/metadata/finalizers"}]""";

    [SkippableFact]
    public async Task Only_the_operator_removes_its_finalizer_and_breaking_glass_is_audited_stops_the_agent_and_keeps_the_requester_of_the_stored_pcap()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-finalizer");
        var pod = await cluster.StartPodAsync(ns, "api");
        var created = await cluster.StartCaptureAsync(ns, "guarded", PacketCaptureEndToEndTests.Icmp("incident 4711", "api", duration: "5m"), Long);
        await cluster.Admin.WaitForPacketCaptureAsync(ns, "guarded", c => c.Status?.Targets.FirstOrDefault()?.Message == "capturing and streaming", Long); // a stream is open
        pod.PingFromClient(2);

        // The cluster admin, without saying why: refused by admission.
        var refused = await Assert.ThrowsAsync<HttpOperationException>(() => PatchAsync(ns, "guarded", RemoveFinalizers, V1Patch.PatchType.JsonPatch));
        Assert.Equal(HttpStatusCode.Forbidden, refused.Response.StatusCode);
        Assert.Contains($"only the KubeCapture operator removes {CaptureFinalizer.Name}", refused.Response.Content, StringComparison.Ordinal);
        Assert.Contains(CaptureFinalizer.Name, (await cluster.Admin.GetPacketCaptureAsync(ns, "guarded"))!.Metadata.Finalizers);

        // Saying why: allowed, and audited with who and why; the operator does not put it back.
        var annotate = JsonSerializer.Serialize(new { metadata = new { annotations = new Dictionary<string, string> { [CaptureFinalizer.BreakGlassAnnotation] = "the operator cannot finish (INC-4711)" } } });
        await PatchAsync(ns, "guarded", annotate, V1Patch.PatchType.MergePatch);
        await PatchAsync(ns, "guarded", RemoveFinalizers, V1Patch.PatchType.JsonPatch);
        var broken = await cluster.WaitForAuditAsync(created.Metadata.Uid, "break-glass");
        var glass = broken.Single(l => l.GetProperty("event").GetString() == "break-glass");
        Assert.Equal("admin", glass.GetProperty("actor").GetString());
        Assert.Contains("(the operator cannot finish (INC-4711))", glass.GetProperty("message").GetString(), StringComparison.Ordinal);
        await cluster.Admin.WaitForPacketCaptureAsync(ns, "guarded", c => c.Status?.Phase == CapturePhase.Running && c.Metadata.Finalizers is null or { Count: 0 }, Long);

        // Deleted at once (no finalizer): still recorded, the agent told to stop, the pcap stored with its requester.
        await cluster.Admin.CustomObjects.DeleteNamespacedCustomObjectAsync(PacketCapture.Group, PacketCapture.Version, ns, PacketCapture.Plural, "guarded");
        var lines = await cluster.WaitForAuditAsync(created.Metadata.Uid, "deleted");
        var deleted = lines.Single(l => l.GetProperty("event").GetString() == "deleted");
        Assert.Contains("deleted without the operator's finalizer (someone broke glass: the operator cannot finish (INC-4711))", deleted.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal("admin", deleted.GetProperty("requester").GetProperty("username").GetString());
        var manifest = await StoredManifestAsync(ns, "guarded", "api", () => cluster.Kubelet.Stderr(ns, "api", EphemeralContainerSpec.ContainerName(created.Metadata.Uid)));
        Assert.Equal(("admin", "incident 4711", "requested"), (manifest.Requester?.Username, manifest.Reason, manifest.Agent?.StopReason));
        Assert.Equal(created.Metadata.Uid, manifest.CaptureUid);
        Assert.Equal(4, manifest.Agent!.PacketsWritten); // what was captured before the stop
    }

    [SkippableFact]
    public async Task The_chart_names_as_the_one_finalizer_remover_the_user_kube_apiserver_authenticates_for_the_operators_ServiceAccount()
    {
        var install = await KubeCaptureInstall.SharedAsync();
        var env = KubernetesYaml.LoadAllFromString(install.RenderedYaml).OfType<V1Deployment>().Single().Spec.Template.Spec.Containers[0].Env;
        using var asOperator = install.Server.Client(install.OperatorToken);

        var review = await asOperator.AuthenticationV1.CreateSelfSubjectReviewAsync(new V1SelfSubjectReview());

        Assert.Equal(review.Status.UserInfo.Username, env.Single(e => e.Name == "Admission__OperatorUsername").Value);
    }

    private Task<PacketCapture> PatchAsync(string ns, string name, string body, V1Patch.PatchType type) =>
        cluster.Admin.CustomObjects.PatchNamespacedCustomObjectAsync<PacketCapture>(new V1Patch(body, type), PacketCapture.Group, PacketCapture.Version, ns, PacketCapture.Plural, name);

    /// <summary>The target's manifest, once it is stored (the agent finishes after its stop).</summary>
    private async Task<StoredCaptureManifest> StoredManifestAsync(string ns, string capture, string pod, Func<string> agentLog)
    {
        var key = $"captures/{ns}/{capture}/{pod}.manifest.json";
        var deadline = DateTime.UtcNow + Long;
        while (true)
        {
            // s3rver's data directory is read, not S3: until the PUT's last byte is written the JSON does not parse.
            try
            {
                if (cluster.S3.ObjectPath(key) is { } path)
                {
                    return StorageJsonContext.ReadManifest(await File.ReadAllBytesAsync(path));
                }
            }
            catch (System.Text.Json.JsonException)
            {
            }

            Assert.True(DateTime.UtcNow < deadline, $"{key} was never stored\nagent: {agentLog()}\n{cluster.OperatorLog()}");
            await Task.Delay(200);
        }
    }
}
