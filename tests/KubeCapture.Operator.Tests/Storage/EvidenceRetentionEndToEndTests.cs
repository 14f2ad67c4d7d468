using k8s;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Tests.EndToEnd;
using KubeCapture.Operator.Tests.Subresources;
using KubeCapture.Testing.Kubernetes;

namespace KubeCapture.Operator.Tests.Storage;

/// <summary>
/// Retention through the whole product on the real kube-apiserver, storing in s3rver (a bucket
/// without Object Lock): a locked capture fails before it starts, and deleting a PacketCapture
/// deletes what it stored.
/// </summary>
[Collection(ApiServerClusterCollection.Name)]
public sealed class EvidenceRetentionEndToEndTests(SubresourcesCluster cluster)
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(90);

    [SkippableFact]
    public async Task A_locked_capture_on_a_bucket_without_Object_Lock_fails_with_ObjectLockUnavailable_before_any_container_is_added()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-lock-preflight");
        await cluster.StartPodAsync(ns, "db");
        await cluster.Admin.CreatePacketCaptureAsync(ns, "locked", new PacketCaptureSpec
        {
            Reason = "evidence",
            Target = new CaptureTarget { PodName = "db" },
            Filter = "icmp",
            Duration = "30s",
            Retention = new CaptureRetention { Ttl = "24h", Lock = "governance" },
        });

        var failed = await cluster.Admin.WaitForPhaseAsync(ns, "locked", CapturePhase.Failed, Long);

        var condition = CaptureConditions.Find(failed.Status, CaptureConditions.StorageReady);
        Assert.Equal(("False", "ObjectLockUnavailable"), (condition?.Status, condition?.Reason));
        Assert.Contains($"spec.retention asks for a governance lock, but bucket {cluster.S3.Bucket} has no Object Lock", condition!.Message, StringComparison.Ordinal);
        Assert.Empty(failed.Status!.Targets);
        Assert.Empty(await cluster.CaptureContainersAsync(ns, "db"));
    }

    [SkippableFact]
    public async Task Deleting_a_finished_capture_deletes_its_pcap_and_manifest_from_storage()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-delete-objects");
        var pod = await cluster.StartPodAsync(ns, "web");
        var created = await cluster.StartCaptureAsync(ns, "done", new PacketCaptureSpec
        {
            Reason = "short-lived",
            Target = new CaptureTarget { PodName = "web" },
            Filter = "icmp",
            MaxPackets = 2,
            Duration = "60s",
        }, Long, pods: ["web"]);
        pod.PingFromClient(1);
        var done = await cluster.Admin.WaitForPhaseAsync(ns, "done", CapturePhase.Succeeded, Long);
        var artifact = Assert.Single(done.Status!.Targets).Artifact!;
        var key = artifact.Uri[$"s3://{cluster.S3.Bucket}/".Length..];
        Assert.NotNull(await cluster.S3.ReadObjectAsync(key));

        await cluster.Admin.CustomObjects.DeleteNamespacedCustomObjectAsync(PacketCapture.Group, PacketCapture.Version, ns, PacketCapture.Plural, "done");

        var deadline = DateTime.UtcNow + Long;
        while (await cluster.Admin.GetPacketCaptureAsync(ns, "done") is not null)
        {
            Assert.True(DateTime.UtcNow < deadline, cluster.OperatorLog());
            await Task.Delay(200);
        }

        Assert.Null(await cluster.S3.ReadObjectAsync(key));
        Assert.Null(await cluster.S3.ReadObjectAsync(key[..^".pcap".Length] + ".manifest.json"));
        Assert.Contains($"the PacketCapture was deleted: deleted {artifact.Uri} and its manifest", cluster.Operator.Output, StringComparison.Ordinal);
    }
}
