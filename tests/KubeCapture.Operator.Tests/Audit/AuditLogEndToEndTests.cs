using System.Text.Json;
using k8s;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Tests.EndToEnd;
using KubeCapture.Operator.Tests.Subresources;
using KubeCapture.Testing.Kubernetes;

namespace KubeCapture.Operator.Tests.Audit;

/// <summary>
/// The audit log as an operator reads it: the JSON lines the real operator process prints on stdout
/// for captures on the real kube-apiserver, and the Events beside them.
/// </summary>
[Collection(ApiServerClusterCollection.Name)]
public sealed class AuditLogEndToEndTests(SubresourcesCluster cluster)
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(90);

    [SkippableFact]
    public async Task A_capture_from_request_to_deletion_prints_one_audit_line_per_lifecycle_event_each_with_a_matching_Event()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-audit");
        var pod = await cluster.StartPodAsync(ns, "web");
        var created = await cluster.StartCaptureAsync(ns, "audited", new PacketCaptureSpec
        {
            Reason = "incident 4711",
            Target = new CaptureTarget { PodName = "web" },
            Filter = "icmp",
            MaxPackets = 2,
            Duration = "60s",
        }, Long, pods: ["web"]);
        pod.PingFromClient(1);
        var done = await cluster.Admin.WaitForPhaseAsync(ns, "audited", CapturePhase.Succeeded, Long);
        await cluster.Admin.CustomObjects.DeleteNamespacedCustomObjectAsync(PacketCapture.Group, PacketCapture.Version, ns, PacketCapture.Plural, "audited");

        var lines = await cluster.WaitForAuditAsync(created.Metadata.Uid, "deleted");
        Assert.Equal(["requested", "admitted", "started", "stopped", "stored", "deleted"], lines.Select(l => l.GetProperty("event").GetString()));
        foreach (var line in lines)
        {
            Assert.Equal("audit.kubecapture.io/v1", line.GetProperty("apiVersion").GetString());
            Assert.Equal("CaptureAuditEvent", line.GetProperty("kind").GetString());
            Assert.Equal(ns, line.GetProperty("namespace").GetString());
            Assert.Equal("audited", line.GetProperty("capture").GetString());
            Assert.Equal("incident 4711", line.GetProperty("captureReason").GetString());
            // The admission stamp: the cluster admin of these tests created it.
            Assert.Equal("admin", line.GetProperty("requester").GetProperty("username").GetString());
            Assert.Contains("system:masters", line.GetProperty("requester").GetProperty("groups").EnumerateArray().Select(g => g.GetString()));
            Assert.True(DateTime.TryParse(line.GetProperty("time").GetString(), System.Globalization.CultureInfo.InvariantCulture, out _));
        }

        var stored = lines.Single(l => l.GetProperty("event").GetString() == "stored");
        var artifact = Assert.Single(done.Status!.Targets).Artifact!;
        Assert.Equal("web", stored.GetProperty("pod").GetString());
        Assert.Equal(artifact.Uri, stored.GetProperty("artifact").GetProperty("uri").GetString());
        Assert.Equal(artifact.Sha256, stored.GetProperty("artifact").GetProperty("sha256").GetString());
        Assert.Contains("stopped (count) after 2 packets", lines.Single(l => l.GetProperty("event").GetString() == "stopped").GetProperty("message").GetString(), StringComparison.Ordinal);

        var events = (await cluster.Admin.CoreV1.ListNamespacedEventAsync(ns, fieldSelector: $"involvedObject.uid={created.Metadata.Uid}")).Items;
        foreach (var line in lines.Where(l => l.GetProperty("event").GetString() is not ("requested" or "admitted" or "started")))
        {
            var reason = line.GetProperty("eventReason").GetString();
            Assert.Contains(events, e => e.Reason == reason && e.Message == line.GetProperty("message").GetString());
        }

        // Before Running the object itself is the record (every request counts there): the conditions, and the Event on the pod.
        Assert.Equal("True", CaptureConditions.Find(done.Status, CaptureConditions.Accepted)?.Status);
        Assert.Equal("True", CaptureConditions.Find(done.Status, CaptureConditions.Admitted)?.Status);
        var podEvents = (await cluster.Admin.CoreV1.ListNamespacedEventAsync(ns, fieldSelector: "involvedObject.kind=Pod,involvedObject.name=web")).Items;
        Assert.Contains(podEvents, e => e.Reason == "CaptureStarted" && e.Message.Contains("incident 4711", StringComparison.Ordinal));
    }

    [SkippableFact]
    public async Task A_capture_refused_by_policy_prints_requested_then_refused_with_libpcaps_reason()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-audit-refused");
        await cluster.StartPodAsync(ns, "web");
        var created = await cluster.Admin.CreatePacketCaptureAsync(ns, "bad-filter", new PacketCaptureSpec
        {
            Reason = "typo",
            Target = new CaptureTarget { PodName = "web" },
            Filter = "tcp prot 80",
            Duration = "10s",
        });
        await cluster.Admin.WaitForPhaseAsync(ns, "bad-filter", CapturePhase.Failed, Long);

        var lines = await cluster.WaitForAuditAsync(created.Metadata.Uid, "refused");
        Assert.Equal(["requested", "refused"], lines.Select(l => l.GetProperty("event").GetString()));
        var refused = lines[1];
        Assert.Equal("InvalidFilter", refused.GetProperty("eventReason").GetString());
        var events = (await cluster.Admin.CoreV1.ListNamespacedEventAsync(ns, fieldSelector: $"involvedObject.uid={created.Metadata.Uid}")).Items;
        Assert.Contains(events, e => e.Reason == "InvalidFilter" && e.Type == "Warning" && e.Message == refused.GetProperty("message").GetString());
    }
}
