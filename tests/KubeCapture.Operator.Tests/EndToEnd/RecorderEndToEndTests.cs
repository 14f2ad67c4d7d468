using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Tests.Subresources;
using KubeCapture.Testing.Kubernetes;

namespace KubeCapture.Operator.Tests.EndToEnd;

/// <summary>
/// Issue 24, 1: recordings (spec.recorder) on the real kube-apiserver, reconciled by the operator the
/// chart installs with its default policy: each bad one refused before any pod is touched, with a
/// message naming the field; a valid one refused as not available yet (snapshots cannot reach the
/// ingest), never injected.
/// </summary>
[Collection(ApiServerClusterCollection.Name)]
public sealed class RecorderEndToEndTests(SubresourcesCluster cluster)
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(90);

    [SkippableFact]
    public async Task Each_bad_recording_is_refused_with_its_message_and_a_valid_one_is_not_injected()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-recorder");
        await cluster.StartPodAsync(ns, "api");
        var asked = new Dictionary<string, (RecorderSpec Recorder, string Reason, string Message)>
        {
            ["window"] = (new() { Window = "2m" }, "InvalidSpec", "spec.recorder.window 2m is longer than spec.duration 60s"),
            ["ring"] = (new() { Window = "30s", MaxBytes = "100" }, "InvalidSpec", "spec.recorder.maxBytes 100 cannot hold one packet at snaplen 128 (144 bytes with its record header)"),
            ["trigger-filter"] = (new() { Window = "30s", Triggers = new() { Filter = new() { Expression = "tcp[tcpflags] &", Count = "20/10s" } } }, "InvalidFilter", "spec.recorder.triggers.filter.expression: invalid filter 'tcp[tcpflags] &'"),
            ["both-ends"] = (new() { Window = "30s", Triggers = new() { Findings = ["ResetFromMiddlebox"] } }, "InvalidSpec", "spec.recorder.triggers.findings ResetFromMiddlebox: that finding comes from comparing both ends"),
            ["big-ring"] = (new() { Window = "30s", MaxBytes = "512Mi" }, "PolicyExceeded", "spec.recorder.maxBytes 512Mi is more than the policy's maximum ring 256Mi (Policy:Recorder:MaxRingBytes)"),
            ["valid"] = (new() { Window = "30s", After = "10s", Triggers = new() { Filter = new() { Expression = "icmp[icmptype] = icmp-echo", Count = "5/10s" }, Findings = ["Error"] } }, "RecorderNotAvailable", "spec.recorder is valid, but this operator cannot yet take snapshots through its ingest"),
        };

        foreach (var (name, (recorder, _, _)) in asked)
        {
            var spec = PacketCaptureEndToEndTests.Icmp("intermittent resets", "api");
            spec.Recorder = recorder;
            await cluster.Admin.CreatePacketCaptureAsync(ns, name, spec);
        }

        foreach (var (name, (_, reason, message)) in asked)
        {
            var failed = await cluster.Admin.WaitForPhaseAsync(ns, name, CapturePhase.Failed, Long);
            var accepted = CaptureConditions.Find(failed.Status, CaptureConditions.Accepted)!;
            Assert.Equal((name, "False", reason), (name, accepted.Status, accepted.Reason));
            Assert.Contains(message, accepted.Message, StringComparison.Ordinal);
            Assert.Empty(failed.Status!.Targets);
        }

        Assert.Empty(await cluster.CaptureContainersAsync(ns, "api")); // no pod touched
    }
}
