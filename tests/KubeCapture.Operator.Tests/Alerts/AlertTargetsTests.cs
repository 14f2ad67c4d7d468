using System.Text;
using k8s.Models;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Alerts;

namespace KubeCapture.Operator.Tests.Alerts;

/// <summary>Which recordings' pods an alert snapshots, by its labels, and why none when none (the cluster path is in AlertReceiverEndToEndTests).</summary>
public sealed class AlertTargetsTests
{
    private static readonly PacketCapture[] Shop =
    [
        Capture("db-resets", recorder: true, CapturePhase.Running, ("db-0", TargetState.Capturing, 0), ("db-1", TargetState.Capturing, 1)),
        Capture("db-again", recorder: true, CapturePhase.Running, ("db-0", TargetState.Capturing, 3)),
        Capture("db-plain", recorder: false, CapturePhase.Running, ("db-0", TargetState.Capturing, 0)),
        Capture("web-done", recorder: true, CapturePhase.Succeeded, ("web-0", TargetState.Succeeded, 1)),
    ];

    [Fact]
    public void A_firing_alert_naming_namespace_and_pod_snapshots_every_running_recording_of_that_pod_and_reports_one_at_its_max_snapshots()
    {
        var decisions = AlertTargets.Decide(Alert("firing", ("namespace", "shop"), ("pod", "db-0")), Shop);

        Assert.Equal([("db-again", "db-0", AlertOutcome.AtMaxSnapshots), ("db-resets", "db-0", AlertOutcome.ToAsk)], decisions.Select(d => (d.Capture!.Metadata.Name, d.Pod, d.Outcome)));
        Assert.Equal("alert CheckoutResets (fingerprint f1, startsAt 2026-12-06T10:48:58Z): the recording of pod db-0 by capture shop/db-again has taken its 3 snapshots (spec.recorder.maxSnapshots): no snapshot", decisions[0].Message);
    }

    [Fact]
    public void A_selector_style_alert_naming_the_capture_snapshots_each_of_its_pods()
    {
        var decisions = AlertTargets.Decide(Alert("firing", ("namespace", "shop"), ("kubecapture_capture", "db-resets")), Shop);

        Assert.Equal([("db-0", AlertOutcome.ToAsk), ("db-1", AlertOutcome.ToAsk)], decisions.Select(d => (d.Pod, d.Outcome)));
    }

    [Theory]
    [InlineData("resolved", "shop", "db-0", null, AlertOutcome.Resolved, "is resolved: a resolved alert takes no snapshot")]
    [InlineData("firing", null, "db-0", null, AlertOutcome.NotNamed, "names no recording: its labels need namespace and pod (or namespace and kubecapture_capture, the PacketCapture's name); it has no namespace")]
    [InlineData("firing", "shop", null, null, AlertOutcome.NotNamed, "it has no pod nor kubecapture_capture")]
    [InlineData("firing", "shop", "cart-0", null, AlertOutcome.NoRecorder, "no flight recording (a PacketCapture with spec.recorder) records pod shop/cart-0: no snapshot")]
    [InlineData("firing", "shop", "web-0", null, AlertOutcome.Ended, "the recording of pod web-0 by capture shop/web-done has ended (Succeeded): no snapshot; those taken are in its status.snapshots")]
    [InlineData("firing", "shop", null, "db-plain", AlertOutcome.NoRecorder, "capture shop/db-plain is not a flight recording (it has no spec.recorder): no snapshot")]
    [InlineData("firing", "shop", null, "nothing", AlertOutcome.NoRecorder, "there is no PacketCapture shop/nothing (kubecapture_capture): no snapshot")]
    public void An_alert_that_snapshots_nothing_says_why(string status, string? ns, string? pod, string? capture, AlertOutcome outcome, string message)
    {
        var labels = new[] { ("namespace", ns), ("pod", pod), ("kubecapture_capture", capture) }.Where(l => l.Item2 is not null).Select(l => (l.Item1, l.Item2!)).ToArray();

        var decision = Assert.Single(AlertTargets.Decide(Alert(status, labels), Shop));

        Assert.Equal(outcome, decision.Outcome);
        Assert.Contains(message, decision.Message, StringComparison.Ordinal);
        Assert.StartsWith("alert CheckoutResets (fingerprint f1, startsAt 2026-12-06T10:48:58Z)", decision.Message, StringComparison.Ordinal);
    }

    private static AlertmanagerAlert Alert(string status, params (string Name, string Value)[] labels) => TestAlert.Of(status, labels.Prepend(("alertname", "CheckoutResets")));

    private static PacketCapture Capture(string name, bool recorder, string phase, params (string Pod, string State, int Taken)[] targets) => new()
    {
        Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = "shop", Uid = name + "-uid" },
        Spec = new PacketCaptureSpec { Reason = "resets", Duration = "1h", Target = new CaptureTarget { PodName = "db-0" }, Recorder = recorder ? new RecorderSpec { Window = "5m" } : null },
        Status = new PacketCaptureStatus
        {
            Phase = phase,
            Targets = [.. targets.Select(t => new CaptureTargetStatus { Pod = t.Pod, State = t.State, Recorder = new RecorderStatus { Armed = true, SnapshotsTaken = t.Taken } })],
        },
    };
}
