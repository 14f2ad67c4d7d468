using KubeCapture.Contracts;
using KubeCapture.Contracts.Resources;

namespace KubeCapture.Operator.Alerts;

/// <summary>What became of one alert of a notification, for one recording's pod (or for none).</summary>
public enum AlertOutcome
{
    /// <summary>A snapshot is to be asked of this recording's pod (before the claim and the ask).</summary>
    ToAsk,

    /// <summary>The recording's agent was asked for the snapshot.</summary>
    Asked,

    /// <summary>A notification of this very alert (fingerprint and startsAt) already asked for this pod's snapshot.</summary>
    AlreadyTaken,

    /// <summary>A resolved alert: nothing to keep.</summary>
    Resolved,

    /// <summary>Its labels name no namespace and pod (nor a PacketCapture).</summary>
    NotNamed,

    /// <summary>No running recording (spec.recorder) records the pod it names.</summary>
    NoRecorder,

    /// <summary>The recording of that pod has ended.</summary>
    Ended,

    /// <summary>The recording of that pod has taken its spec.recorder.maxSnapshots.</summary>
    AtMaxSnapshots,

    /// <summary>The recording's agent could not be told now (not connected yet, reconnecting, its replica unreachable): Alertmanager is asked to retry.</summary>
    NotReached,

    /// <summary>No recording records the pod, and a rule of the receiver (<see cref="AlertCaptureRule"/>) created a capture of it.</summary>
    Created,

    /// <summary>A notification of this very alert already had the rule create its capture of the pod.</summary>
    AlreadyCreated,

    /// <summary>kube-apiserver refused the capture a rule made for the alert (the policy's admission, RBAC, the schema).</summary>
    CreateRefused,
}

/// <summary>One alert's outcome for one recording's pod, in words.</summary>
public sealed record AlertDecision(AlertmanagerAlert Alert, AlertOutcome Outcome, string Message, PacketCapture? Capture = null, string? Pod = null)
{
    /// <summary>Whether Alertmanager should send the notification again (answered 503; it retries 5xx, never 4xx).</summary>
    public bool Retry => Outcome == AlertOutcome.NotReached;

    /// <summary>The metric label: asked, already_taken, resolved, not_named, no_recorder, ended, at_max_snapshots, not_reached, created, already_created, create_refused.</summary>
    public string OutcomeLabel => Outcome switch
    {
        AlertOutcome.ToAsk or AlertOutcome.Asked => "asked",
        AlertOutcome.AlreadyTaken => "already_taken",
        AlertOutcome.Resolved => "resolved",
        AlertOutcome.NotNamed => "not_named",
        AlertOutcome.NoRecorder => "no_recorder",
        AlertOutcome.Ended => "ended",
        AlertOutcome.AtMaxSnapshots => "at_max_snapshots",
        AlertOutcome.Created => "created",
        AlertOutcome.AlreadyCreated => "already_created",
        AlertOutcome.CreateRefused => "create_refused",
        _ => "not_reached",
    };
}

/// <summary>
/// Which recordings an alert names, by its labels: <c>namespace</c> and <c>pod</c> (as kube-state-metrics
/// and most Kubernetes alerts carry them) snapshot every running recording (<c>spec.recorder</c>) with
/// that pod among its targets; <c>namespace</c> and <c>kubecapture_capture</c> (a selector-style alert,
/// about a service rather than one pod) name one PacketCapture, all of whose pods are snapshotted, or
/// with <c>pod</c> too, that one of them. A resolved alert takes nothing.
/// </summary>
public static class AlertTargets
{
    public const string NamespaceLabel = "namespace";
    public const string PodLabel = "pod";
    public const string CaptureLabel = "kubecapture_capture";

    /// <summary>The namespace an alert names, or null.</summary>
    public static string? NamespaceOf(AlertmanagerAlert alert) => Label(alert, NamespaceLabel);

    /// <summary>The pod an alert names, or null.</summary>
    public static string? PodOf(AlertmanagerAlert alert) => Label(alert, PodLabel);

    /// <summary>
    /// What <paramref name="alert"/> asks of the captures of its namespace (<paramref name="captures"/>,
    /// every PacketCapture there): one <see cref="AlertOutcome.ToAsk"/> per recording pod to snapshot, or
    /// one decision saying why none.
    /// </summary>
    public static IReadOnlyList<AlertDecision> Decide(AlertmanagerAlert alert, IReadOnlyCollection<PacketCapture> captures)
    {
        var (ns, pod, name) = (NamespaceOf(alert), Label(alert, PodLabel), Label(alert, CaptureLabel));
        if (alert.Status == AlertmanagerAlert.Resolved)
        {
            return [new(alert, AlertOutcome.Resolved, $"alert {alert.Describe} is resolved: a resolved alert takes no snapshot")];
        }

        if (ns is null || (pod is null && name is null))
        {
            return [new(alert, AlertOutcome.NotNamed,
                $"alert {alert.Describe} names no recording: its labels need {NamespaceLabel} and {PodLabel} (or {NamespaceLabel} and {CaptureLabel}, the PacketCapture's name); it has {(ns is null ? "no " + NamespaceLabel : "no " + PodLabel + " nor " + CaptureLabel)}")];
        }

        var where = pod is null ? $"capture {ns}/{name}" : $"pod {ns}/{pod}";
        var recordings = captures.Where(c => c.Spec.Recorder is not null && (name is null || c.Metadata.Name == name)).ToList();
        if (name is not null && recordings.Count == 0)
        {
            return [new(alert, AlertOutcome.NoRecorder, captures.Any(c => c.Metadata.Name == name)
                ? $"alert {alert.Describe}: capture {ns}/{name} is not a flight recording (it has no spec.recorder): no snapshot"
                : $"alert {alert.Describe}: there is no PacketCapture {ns}/{name} ({CaptureLabel}): no snapshot")];
        }

        var decisions = new List<AlertDecision>();
        foreach (var capture in recordings.OrderBy(c => c.Metadata.Name, StringComparer.Ordinal))
        {
            var targets = (capture.Status?.Targets ?? []).Where(t => pod is null || t.Pod == pod).ToList();
            var capturing = $"capture {ns}/{capture.Metadata.Name}";
            if (targets.Count == 0 && pod is not null)
            {
                continue; // a recording of other pods
            }

            if (targets.Count == 0)
            {
                decisions.Add(new(alert, AlertOutcome.NotReached, $"alert {alert.Describe}: {capturing} has no target pod yet (phase {capture.Status?.Phase ?? CapturePhase.Pending}): asking Alertmanager to send it again", capture));
                continue;
            }

            foreach (var target in targets)
            {
                var max = capture.Spec.Recorder!.MaxSnapshots ?? 3;
                decisions.Add(CapturePhase.IsTerminal(capture.Status?.Phase) || TargetState.IsTerminal(target.State)
                    ? new(alert, AlertOutcome.Ended, $"alert {alert.Describe}: the recording of pod {target.Pod} by {capturing} has ended ({(CapturePhase.IsTerminal(capture.Status?.Phase) ? capture.Status!.Phase : target.State)}): no snapshot; those taken are in its status.snapshots", capture, target.Pod)
                    : target.Recorder?.SnapshotsTaken >= max
                        ? new(alert, AlertOutcome.AtMaxSnapshots, $"alert {alert.Describe}: the recording of pod {target.Pod} by {capturing} has taken its {max} snapshots (spec.recorder.maxSnapshots): no snapshot", capture, target.Pod)
                        : new(alert, AlertOutcome.ToAsk, $"alert {alert.Describe}: snapshot of pod {target.Pod} by {capturing}", capture, target.Pod));
            }
        }

        return decisions.Count > 0 ? decisions
            : [new(alert, AlertOutcome.NoRecorder, $"alert {alert.Describe}: no flight recording (a PacketCapture with spec.recorder) records {where}: no snapshot")];
    }

    private static string? Label(AlertmanagerAlert alert, string name) => alert.Labels.GetValueOrDefault(name) is { Length: > 0 } value ? value : null;
}
