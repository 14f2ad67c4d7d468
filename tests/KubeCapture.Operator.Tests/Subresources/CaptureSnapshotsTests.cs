using k8s.Models;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Subresources;

namespace KubeCapture.Operator.Tests.Subresources;

/// <summary>A snapshot by hand refused before any agent is asked, each with its message (the cluster path is in RecorderEndToEndTests).</summary>
public sealed class CaptureSnapshotsTests
{
    [Theory]
    [InlineData(false, CapturePhase.Running, "db", null, 400, "capture db-resets is not a flight recording (it has no spec.recorder): it has no ring to take a snapshot of; its pcap is downloaded with 'kubectl capture download db-resets'")]
    [InlineData(true, CapturePhase.Failed, "db", null, 409, "capture db-resets has ended (Failed): its recorders stopped, so no snapshot can be taken; those taken are in status.snapshots")]
    [InlineData(true, CapturePhase.Pending, null, null, 409, "capture db-resets has no target pod yet (phase Pending); try again when it records")]
    [InlineData(true, CapturePhase.Running, "db", "web", 404, "capture db-resets has no target pod \"web\" (its targets: db)")]
    public void A_snapshot_is_refused_for_a_capture_that_is_not_a_recording_has_ended_has_no_pod_yet_or_not_that_pod(bool recording, string phase, string? target, string? pod, int code, string message)
    {
        var capture = new PacketCapture
        {
            Metadata = new V1ObjectMeta { Name = "db-resets", NamespaceProperty = "shop", Uid = "u" },
            Spec = new PacketCaptureSpec { Reason = "resets", Duration = "1h", Target = new CaptureTarget { PodName = "db" }, Recorder = recording ? new RecorderSpec { Window = "5m" } : null },
            Status = new PacketCaptureStatus { Phase = phase, Targets = target is null ? [] : [new CaptureTargetStatus { Pod = target, State = TargetState.Capturing }] },
        };

        var refused = CaptureSnapshots.Refusal(capture, pod, out var targets);

        Assert.Equal((code, message), (refused?.Code, refused?.Message));
        Assert.Empty(targets);
    }

    [Fact]
    public void Without_a_pod_every_target_of_a_running_recording_is_asked()
    {
        var capture = new PacketCapture
        {
            Metadata = new V1ObjectMeta { Name = "db-resets", NamespaceProperty = "shop", Uid = "u" },
            Spec = new PacketCaptureSpec { Reason = "resets", Duration = "1h", Target = new CaptureTarget { PodName = "db" }, Recorder = new RecorderSpec { Window = "5m" } },
            Status = new PacketCaptureStatus { Phase = CapturePhase.Running, Targets = [new CaptureTargetStatus { Pod = "db-0" }, new CaptureTargetStatus { Pod = "db-1" }] },
        };

        Assert.Null(CaptureSnapshots.Refusal(capture, null, out var targets));
        Assert.Equal(["db-0", "db-1"], targets.Select(t => t.Pod));
    }
}
