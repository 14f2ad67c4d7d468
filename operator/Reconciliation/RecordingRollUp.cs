using KubeCapture.Contracts.Recorder;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Findings;
using KubeCapture.Operator.Ingest;

namespace KubeCapture.Operator.Reconciliation;

/// <summary>
/// A flight recording's status (spec.recorder): each target's <c>recorder</c> (armed, the ring's fill,
/// drops, the last trigger evaluated) as its agent last reported it on the recording's stream, and
/// <c>status.snapshots[]</c>, one entry per stored snapshot (its trigger, window, packets, artifact
/// and findings). The status is the memory: an entry written stays; one this replica's ingest stored
/// since is added, and one another replica stored (or this one before a restart) is read from storage.
/// </summary>
public sealed class RecordingRollUp(IIngestStatus ingest)
{
    public async Task ApplyAsync(StatusDraft draft, CancellationToken cancellationToken)
    {
        if (draft.Capture.Spec.Recorder is null)
        {
            return;
        }

        var snapshots = draft.Status.Snapshots?.ToList() ?? [];
        foreach (var target in draft.Status.Targets)
        {
            var identity = draft.Target(target.Pod);
            if (!TargetState.IsTerminal(target.State) && await ingest.GetAsync(identity, cancellationToken) is { Recorder: { } recorder })
            {
                target.Recorder = recorder;
            }

            foreach (var stored in ingest.Snapshots(identity))
            {
                if (stored.Snapshot is { } manifest && stored.Artifact is { } artifact && !snapshots.Any(s => s.Pod == target.Pod && s.Index == stored.Target.Snapshot))
                {
                    snapshots.Add(Entry(target.Pod, stored.Target.Snapshot, manifest, artifact));
                }
            }

            // Every replica ingests: a snapshot another replica stored (or this one before a restart) is
            // found in storage. Storage is asked only while the agent says it took more snapshots than
            // are listed (or once its target has ended, when its last report may not have come), and
            // snapshots are taken one after the other, so the look stops at the first index not stored
            // yet: a running recording costs no read until a snapshot is taken, then at most one miss
            // per target and reconcile until it is stored.
            if (!TargetState.IsTerminal(target.State) && (target.Recorder?.SnapshotsTaken ?? 0) <= snapshots.Count(s => s.Pod == target.Pod))
            {
                continue;
            }

            for (var index = 1; index <= (draft.Capture.Spec.Recorder.MaxSnapshots ?? RecorderLimits.DefaultMaxSnapshots); index++)
            {
                if (snapshots.Any(s => s.Pod == target.Pod && s.Index == index))
                {
                    continue;
                }

                if (await ingest.StoredSnapshotAsync(identity with { Snapshot = index }, cancellationToken) is not { Snapshot: { } manifest, Artifact: { } artifact })
                {
                    break;
                }

                snapshots.Add(Entry(target.Pod, index, manifest, artifact));
            }
        }

        if (snapshots.Count > 0)
        {
            draft.Status.Snapshots = [.. snapshots.OrderBy(s => s.Pod, StringComparer.Ordinal).ThenBy(s => s.Index)];
        }
    }

    private static SnapshotStatus Entry(string pod, int index, KubeCapture.Contracts.Recorder.SnapshotManifest manifest, Provenance.StoredArtifact artifact) => new()
    {
        Pod = pod,
        Index = index,
        Time = DateTime.TryParse(manifest.Trigger.Time, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AdjustToUniversal | System.Globalization.DateTimeStyles.AssumeUniversal, out var time) ? time : null,
        TriggerKind = manifest.Trigger.Kind,
        TriggerDetail = manifest.Trigger.Detail,
        Requester = manifest.Trigger.Requester,
        WindowStart = manifest.WindowStart,
        WindowEnd = manifest.WindowEnd,
        Packets = manifest.Packets,
        Artifact = TargetObservation.ArtifactOf(artifact),
        Findings = manifest.Findings.Count > 0 ? StatusFindings.Of(manifest.Findings, out _) : null,
    };
}
