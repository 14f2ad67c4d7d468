using System.Text.Json;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Resources;
using KubeCapture.Contracts.Summary;
using KubeCapture.Operator.Custody;
using KubeCapture.Operator.Findings;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Watcher;

namespace KubeCapture.Operator.Reconciliation;

/// <summary>
/// What is true now, target by target: the capture container's state (from the pod cache) and the
/// ingest's view of the upload make each target's state. A stored pcap counts as the target's
/// evidence only once its capture agent confirmed it: the agent exits 0 only after the ingest told its
/// own session Stored (or exits with an error after printing the stored SHA-256). A pcap stored
/// without that confirmation came from another session, someone with the upload token inside the
/// pod, and the target fails as contested.
/// </summary>
public sealed class TargetObservation(IIngestStatus ingest, ClusterCache cluster, IAgentAddresses addresses, ICustodyWitness custody)
{
    /// <summary>Early stop (the stop field, or the capture being deleted): targets not started fail, the agents are told to stop.</summary>
    public void StopIfAsked(StatusDraft draft)
    {
        if (!draft.StopAsked)
        {
            return;
        }

        foreach (var target in draft.Status.Targets.Where(t => t.State == TargetState.Pending))
        {
            PhaseRollUp.Fail(target, "StoppedBeforeStart", "stopped or deleted before the capture container was added: nothing was captured here");
        }

        ingest.RequestStop(draft.Uid);
    }

    /// <summary>Every target not ended yet, then what the ended ones mean for the ingest, and whether the capture is contested.</summary>
    public async Task ObserveAsync(StatusDraft draft, bool pastDeadline, CancellationToken cancellationToken)
    {
        foreach (var target in draft.Status.Targets.Where(t => !TargetState.IsTerminal(t.State)))
        {
            await ObserveAsync(draft, target, pastDeadline, cancellationToken);
        }

        TellEnded(draft);
        if (draft.Status.Targets.FirstOrDefault(t => t.Reason == CaptureConditions.UploadContested) is { } contested)
        {
            draft.Set(CaptureConditions.Contested, true, CaptureConditions.UploadContested, $"pod {contested.Pod}: {contested.Message}");
        }
    }

    /// <summary>
    /// Tells the ingest which targets have ended (it accepts no upload for them any more) and, for a
    /// contested one, again that it is contested (after a restart it knows only what it is told).
    /// </summary>
    public void TellEnded(StatusDraft draft)
    {
        foreach (var target in draft.Status.Targets.Where(t => TargetState.IsTerminal(t.State)))
        {
            var identity = draft.Target(target.Pod);
            addresses.Close(identity, target.State == TargetState.Succeeded ? "its pcap is stored" : $"{target.State}: {target.Reason}");
            if (target.Reason == CaptureConditions.UploadContested)
            {
                ingest.MarkContested(identity, target.Message ?? CaptureConditions.UploadContested);
            }
        }
    }

    private async Task ObserveAsync(StatusDraft draft, CaptureTargetStatus target, bool pastDeadline, CancellationToken cancellationToken)
    {
        var capture = draft.Capture;
        var identity = draft.Target(target.Pod);
        var upload = await ingest.GetAsync(identity, cancellationToken);
        if (upload is not null && ShowUpload(target, upload))
        {
            return;
        }

        var stored = upload is { Phase: UploadPhase.Finished, Artifact: not null };

        // From the pod cache: the pod watch wakes this capture when its container changes.
        if (await cluster.GetPodAsync(capture.Metadata.NamespaceProperty, target.Pod, cancellationToken) is not { } pod)
        {
            addresses.Unbind(identity); // its IP may go to another pod
            if (stored)
            {
                Contest(identity, target, $"a pcap was stored for pod '{target.Pod}' ({target.Artifact!.Uri}), but the pod was deleted before its capture agent confirmed it: it may not be the agent's");
                return;
            }

            PhaseRollUp.Fail(target, "PodDeleted", $"pod '{target.Pod}' was deleted during the capture");
            return;
        }

        custody.Witness(capture, pod, target.Container);
        addresses.Expect(identity, UploadTerms.Of(capture, pod)); // again after an operator restart or on a new leader
        var container = pod.Status?.EphemeralContainerStatuses?.FirstOrDefault(c => c.Name == target.Container);

        var state = container?.State;
        var terminated = state?.Terminated;
        if (terminated is not null)
        {
            target.ExitCode = terminated.ExitCode;
        }

        var detail = terminated is null ? null : string.IsNullOrWhiteSpace(terminated.Message) ? terminated.Reason : terminated.Message.Trim();
        if (stored)
        {
            var artifact = target.Artifact!;
            if (terminated is null)
            {
                if (pastDeadline)
                {
                    Contest(identity, target, $"a pcap was stored for pod '{target.Pod}' ({artifact.Uri}), but its capture agent never confirmed it before the deadline (duration + grace): another session uploaded it");
                    return;
                }

                target.State = TargetState.Uploading;
                target.Message = $"stored ({artifact.Uri}); waiting for the capture agent to confirm it";
                return;
            }

            // The agent prints "stored URI (N bytes, sha256 X" once the ingest told its own session Stored.
            if (terminated.ExitCode == 0 || detail?.Contains($"sha256 {artifact.Sha256}", StringComparison.OrdinalIgnoreCase) == true)
            {
                target.State = TargetState.Succeeded;
                var error = upload!.Manifest?.Error is { Length: > 0 } why ? $": {why}" : "";
                target.Message = $"stored and verified ({target.Packets} packets, stopped: {target.StopReason ?? "unknown"}{error})" +
                    (terminated.ExitCode == 0 ? "" : $"; the agent then exited with code {terminated.ExitCode}: {detail}");
                return;
            }

            Contest(identity, target, $"a pcap was stored for pod '{target.Pod}' ({artifact.Uri}, sha256 {artifact.Sha256}), but its capture agent did not upload it: the agent exited with code {terminated.ExitCode}{(string.IsNullOrEmpty(detail) ? "" : ": " + detail)}");
            return;
        }

        if (state?.Waiting is { } waiting && waiting.Reason is "ErrImagePull" or "ImagePullBackOff" or "InvalidImageName" or "ErrImageNeverPull")
        {
            PhaseRollUp.Fail(target, "ImagePullFailed", $"the capture image '{container!.Image}' cannot be pulled ({waiting.Reason}): {waiting.Message}");
        }
        else if (state?.Waiting is { Reason: "CreateContainerError" or "CreateContainerConfigError" or "RunContainerError" } failedToStart)
        {
            PhaseRollUp.Fail(target, "ContainerFailed", $"the capture container could not start ({failedToStart.Reason}): {failedToStart.Message}");
        }
        else if (terminated is not null)
        {
            if (terminated.ExitCode != 0 && target.RefusedSessions > 0)
            {
                Contest(identity, target, $"the capture agent was refused: another agent session holds the target's upload (someone with the upload token, inside pod '{target.Pod}', connected first); the agent exited with code {terminated.ExitCode}{(string.IsNullOrEmpty(detail) ? "" : ": " + detail)}. What the other session uploads is never this capture's evidence");
            }
            else if (terminated.ExitCode != 0)
            {
                PhaseRollUp.Fail(target, "AgentCrashed", $"the capture agent exited with code {terminated.ExitCode}{(string.IsNullOrEmpty(detail) ? "" : ": " + detail)}");
            }
            else
            {
                target.State = TargetState.Uploading;
                target.Message = "the agent finished; waiting for the ingest to confirm the stored pcap";
            }
        }
        else if (state?.Running is not null)
        {
            target.State = TargetState.Capturing;
            target.Message = upload is null ? "capturing; the agent has not connected to the ingest yet" : "capturing and streaming";
        }

        if (!TargetState.IsTerminal(target.State) && pastDeadline)
        {
            PhaseRollUp.Fail(target, "DeadlineExceeded", target.State switch
            {
                TargetState.Starting => "the capture container never started before the deadline (duration + grace)",
                TargetState.Uploading => "the agent finished but the ingest never confirmed the stored pcap before the deadline (duration + grace)",
                _ => "no end of capture before the deadline (duration + grace): the agent or its stream went silent",
            });
        }
    }

    /// <summary>The ingest's counters, summary and stored artifact on the target; true when the upload failed (the target with it).</summary>
    private static bool ShowUpload(CaptureTargetStatus target, TargetUpload upload)
    {
        target.Packets = upload.Packets;
        target.Bytes = upload.Bytes;
        target.DroppedByKernel = upload.DroppedByKernel;
        if (upload.Manifest is null && upload.SummarySoFar is { } soFar)
        {
            // Findings so far, while it captures (written at most every Reconciler:ProgressInterval).
            ShowSummary(target, soFar);
        }

        if (upload.Manifest is { } manifest)
        {
            target.Packets = manifest.PacketsWritten;
            target.Bytes = manifest.BytesWritten;
            target.DroppedByKernel = manifest.PacketsDroppedByKernel;
            target.StopReason = manifest.StopReason;
            if (manifest.Summary is { } summary)
            {
                ShowSummary(target, summary);
            }
        }

        if (upload.Artifact is { } artifact)
        {
            target.Artifact = ArtifactOf(artifact);
        }

        if (upload.Phase == UploadPhase.Failed)
        {
            PhaseRollUp.Fail(target, "UploadFailed", $"the upload failed: {upload.Error ?? "no reason given"}");
            return true;
        }

        return false;
    }

    /// <summary>A stored pcap as the status shows it: where, how big, its SHA-256, until when it is kept and locked.</summary>
    public static CaptureArtifact ArtifactOf(Provenance.StoredArtifact artifact) => new()
    {
        Uri = artifact.Uri,
        Size = artifact.Size,
        Sha256 = artifact.Sha256,
        ExpiresAt = artifact.ExpiresAt?.UtcDateTime,
        Lock = artifact.Retention?.Lock is "governance" or "compliance" ? artifact.Retention.Lock : null,
        LegalHold = artifact.Retention?.LegalHold == true ? true : null,
    };

    private static void ShowSummary(CaptureTargetStatus target, TcpSummaryReport summary)
    {
        // The findings go to their own field, typed and bounded; not twice. The connection
        // records are for comparing two ends, not for the status.
        target.Summary = JsonSerializer.SerializeToElement(summary with { Findings = [], FindingsOmitted = 0, ConnectionsWithFindings = [], ConnectionsWithFindingsOmitted = 0, ConnectionsWithoutFindings = [] }, SummaryJsonContext.Default.TcpSummaryReport);
        target.Findings = StatusFindings.OfTarget(summary, out var omitted);
        target.FindingsOmitted = omitted > 0 ? omitted : null;
    }

    /// <summary>The target's pcap is not its agent's: it fails, and the ingest records it in the pcap's manifest.</summary>
    private void Contest(CaptureIdentity identity, CaptureTargetStatus target, string message)
    {
        PhaseRollUp.Fail(target, CaptureConditions.UploadContested, message + "; it is kept, marked contested in its manifest, and is never clean evidence");
        if (target.Artifact is { } artifact)
        {
            artifact.Contested = true;
        }

        ingest.MarkContested(identity, target.Message!);
    }
}
