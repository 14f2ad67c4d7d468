using k8s;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Tests.Subresources;
using KubeCapture.Testing.Kubernetes;

namespace KubeCapture.Operator.Tests.EndToEnd;

/// <summary>
/// Issue 20, 2: anyone who may create a PacketCapture could ask for a century of compliance lock (S3
/// compliance cannot be shortened by anyone, and lifecycle rules skip locked objects). The operator,
/// with the policy the chart renders by default (the same as its own defaults: HelmChartTests),
/// refuses what is beyond it with PolicyExceeded before any pod is touched.
/// </summary>
[Collection(ApiServerClusterCollection.Name)]
public sealed class RetentionPolicyEndToEndTests(SubresourcesCluster cluster)
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(90);

    [SkippableFact]
    public async Task A_century_of_compliance_lock_or_a_legal_hold_is_refused_PolicyExceeded_before_any_pod_is_touched()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-retention");
        await cluster.StartPodAsync(ns, "api");
        var asked = new Dictionary<string, CaptureRetention>
        {
            ["century"] = new() { Ttl = "876000h", Lock = "compliance" },
            ["compliance"] = new() { Ttl = "24h", Lock = "compliance" },
            ["held"] = new() { Ttl = "24h", LegalHold = true },
        };

        var created = new List<PacketCapture>();
        foreach (var (name, retention) in asked)
        {
            var spec = PacketCaptureEndToEndTests.Icmp("keep it forever", "api");
            spec.Retention = retention;
            created.Add(await cluster.Admin.CreatePacketCaptureAsync(ns, name, spec));
        }

        var refused = new Dictionary<string, PacketCapture>();
        foreach (var name in asked.Keys)
        {
            refused[name] = await cluster.Admin.WaitForPhaseAsync(ns, name, CapturePhase.Failed, Long);
        }

        foreach (var (name, capture) in refused)
        {
            var accepted = CaptureConditions.Find(capture.Status, CaptureConditions.Accepted)!;
            Assert.Equal(("False", "PolicyExceeded"), (accepted.Status, accepted.Reason));
            Assert.Empty(capture.Status!.Targets);
        }

        Assert.Contains("spec.retention.ttl 876000h is longer than the policy's maximum retention 720h", CaptureConditions.Find(refused["century"].Status, CaptureConditions.Accepted)!.Message, StringComparison.Ordinal);
        Assert.Contains("asks for a compliance lock, which the policy does not allow in namespace", CaptureConditions.Find(refused["compliance"].Status, CaptureConditions.Accepted)!.Message, StringComparison.Ordinal);
        Assert.Contains("asks for a legal hold, which the policy does not allow", CaptureConditions.Find(refused["held"].Status, CaptureConditions.Accepted)!.Message, StringComparison.Ordinal);
        Assert.Empty(await cluster.CaptureContainersAsync(ns, "api")); // no pod touched
        Assert.Empty((await cluster.Admin.CoreV1.ListNamespacedSecretAsync(ns, labelSelector: UploadTokenSecret.CaptureUidLabel)).Items);
        foreach (var capture in created)
        {
            var audit = await cluster.WaitForAuditAsync(capture.Metadata.Uid, "refused");
            Assert.Contains(audit, l => l.GetProperty("event").GetString() == "refused" && l.GetProperty("eventReason").GetString() == "PolicyExceeded");
        }
    }
}
