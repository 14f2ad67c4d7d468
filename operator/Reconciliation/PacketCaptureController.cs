using System.Text.Json;
using k8s;
using k8s.Models;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Resources;
using KubeCapture.Contracts.Summary;
using KubeCapture.Operator.Admission;
using KubeCapture.Operator.Audit;
using KubeCapture.Operator.Custody;
using KubeCapture.Operator.Events;
using KubeCapture.Operator.Finalizer;
using KubeCapture.Operator.Findings;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Metrics;
using KubeCapture.Operator.Provenance;
using KubeCapture.Operator.Storage;
using KubeCapture.Operator.Watcher;
using Microsoft.Extensions.Logging;

namespace KubeCapture.Operator.Reconciliation;

/// <summary>What the queue should do with the capture's key after a reconcile.</summary>
public sealed record ReconcileResult(TimeSpan? RequeueAfter)
{
    public static readonly ReconcileResult Done = new((TimeSpan?)null);

    public static ReconcileResult After(TimeSpan delay) => new(delay);
}

/// <summary>
/// Level-triggered and idempotent: from the capture as it is now, the pods as they are and the
/// ingest's view of each upload, bring the world one step closer to the spec and write a status
/// that says exactly what is true. Safe to run any number of times, and after a crash at any line.
/// Reads pods and namespaces from the operator's caches (<see cref="ClusterCache"/>): a capture on
/// one pod costs the finalizer patch, the container patch, one Event and the status writes.
/// </summary>
public sealed class PacketCaptureController(
    IKubernetes kubernetes,
    ClusterCache cluster,
    IIngestStatus ingest,
    ICaptureTokenIssuer tokens,
    IAgentAddresses addresses,
    CapturePolicy policy,
    ReconcilerOptions options,
    TargetResolver targets,
    PodSecurityPreflight podSecurity,
    ConcurrencySlots slots,
    CaptureEvents events,
    TimeProvider time,
    ILogger<PacketCaptureController> logger,
    Action<PacketCapture>? written = null,
    ICustodyWitness? custody = null,
    AuditTrail? audit = null,
    EvidenceRetention? retention = null,
    Func<string?>? ingestAuthority = null)
{
    private readonly TimeSpan grace = CapturePolicy.ParseDuration(options.Grace, "Reconciler:Grace");
    /// <summary>How soon a capture waiting for a concurrency slot looks again (from the cache, no API read).</summary>
    private static readonly TimeSpan AdmissionRetry = TimeSpan.FromSeconds(5);

    private readonly TimeSpan resync = CapturePolicy.ParseDuration(options.ResyncPeriod, "Reconciler:ResyncPeriod");
    private readonly TimeSpan progressInterval = CapturePolicy.ParseDuration(options.ProgressInterval, "Reconciler:ProgressInterval");

    /// <summary>
    /// How capture containers get their upload token: Secret or PodSpec (<see cref="ReconcilerOptions.TokenDelivery"/>;
    /// Auto is resolved by <see cref="CaptureOperator"/> from the server's version before any reconcile).
    /// </summary>
    public TokenDelivery TokenDelivery { get; set; } = options.TokenDelivery == TokenDelivery.PodSpec ? TokenDelivery.PodSpec : TokenDelivery.Secret;

    /// <summary>Captures (by UID) whose deletion the operator let go of itself, its audit line written.</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> deletionsRecorded = new();

    /// <summary>When each active capture's status was last written (by UID), for <see cref="ReconcilerOptions.ProgressInterval"/>.</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, DateTimeOffset> statusWrittenAt = new();

    public async Task<ReconcileResult> ReconcileAsync(PacketCapture capture, IReadOnlyList<PacketCapture> allCaptures, CancellationToken cancellationToken)
    {
        var deleting = capture.Metadata.DeletionTimestamp is not null;
        if (!deleting && !CaptureFinalizer.IsPresent(capture) && CaptureFinalizer.BreakGlass(capture) is null)
        {
            // Without the admission webhook (which adds it at create): go on with the object as patched
            // (its new resourceVersion), no second trip through the queue.
            capture = await CaptureFinalizer.AddAsync(kubernetes, capture, cancellationToken);
            written?.Invoke(capture);
        }

        var status = Clone(capture.Status) ?? new PacketCaptureStatus();
        var before = JsonSerializer.Serialize(status);
        var now = time.GetUtcNow().UtcDateTime;
        var generation = capture.Metadata.Generation;
        if (CapturePhase.IsTerminal(status.Phase))
        {
            // A stored pcap is never replaced, but a forged stream that tries after the end is still recorded.
            slots.Release(capture.Metadata.Uid);
            statusWrittenAt.TryRemove(capture.Metadata.Uid, out _);
            TellEnded(capture, status); // again after an operator restart or on a new leader
            var refusedAfterEnd = TakeRefusals(capture, status);
            var ended = await FinishAsync(capture, status, before, deleting, cancellationToken);
            await AnnounceRefusalsAsync(capture, refusedAfterEnd, cancellationToken);
            return ended;
        }

        // This reconcile looks at the current generation: what still holds, holds for it.
        status.ObservedGeneration = generation;
        foreach (var condition in status.Conditions)
        {
            condition.ObservedGeneration = generation;
        }

        // 0. Who asked: the admission webhook's stamp, or nothing starts.
        if (options.RequireRequesterStamp && status.Targets.Count == 0)
        {
            if (RequesterStamp.Read(capture.Metadata.Annotations, out var unstamped) is not { } requester)
            {
                var message = $"the capture carries no requester stamped by admission ({unstamped}): the KubeCapture admission webhook is not installed or was bypassed; nothing was captured (recreate the capture once the MutatingWebhookConfiguration is in place)";
                CaptureConditions.Set(status, CaptureConditions.RequesterVerified, false, "NotStamped", message, generation, now);
                return await FailAsync(capture, status, before, "NotStamped", message, deleting, cancellationToken);
            }

            CaptureConditions.Set(status, CaptureConditions.RequesterVerified, true, "Stamped", $"requested by {requester.Username}, as kube-apiserver authenticated them", generation, now);
        }

        // 1. The spec: libpcap compiles the filter, policy allows the rest.
        var verdict = policy.Check(capture);
        if (!verdict.Allowed)
        {
            CaptureConditions.Set(status, CaptureConditions.Accepted, false, verdict.Reason, verdict.Message, generation, now);
            return await FailAsync(capture, status, before, verdict.Reason, verdict.Message, deleting, cancellationToken);
        }

        CaptureConditions.Set(status, CaptureConditions.Accepted, true, verdict.Reason, verdict.Message, generation, now);

        // 2. Not started yet: wait for a slot, then find the pods, check Pod Security (once), inject.
        PodSecurityVerdict? security = null;
        if (status.Targets.Count == 0)
        {
            if (deleting || capture.Spec.Stop == true)
            {
                CaptureConditions.Set(status, CaptureConditions.Admitted, false, "StoppedBeforeStart", "the capture was stopped or deleted before it started", generation, now);
                return await FailAsync(capture, status, before, "StoppedBeforeStart", "stopped or deleted before any capture started: nothing was captured", deleting, cancellationToken);
            }

            if (slots.TryAdmit(capture, allCaptures) is { } waiting)
            {
                CaptureConditions.Set(status, CaptureConditions.Admitted, false, "ConcurrencyLimit", waiting, generation, now);
                status.Phase = CapturePhase.Pending;
                status.Message = waiting;
                await WriteStatusAsync(capture, status, before, cancellationToken);
                // From the cache only: a freed slot is seen at the next look, at most this long after.
                return ReconcileResult.After(resync < AdmissionRetry ? resync : AdmissionRetry);
            }

            CaptureConditions.Set(status, CaptureConditions.Admitted, true, "SlotAvailable", "within the concurrency limits", generation, now);
            if (capture.Spec.Retention?.NeedsObjectLock == true && retention is not null)
            {
                // Before anything starts: never silently unlocked evidence.
                if (await retention.CheckObjectLockAsync(cancellationToken) is { } noLock)
                {
                    slots.Release(capture.Metadata.Uid);
                    var message = $"spec.retention asks for {(capture.Spec.Retention.LegalHold == true ? "a legal hold" : "")}{(capture.Spec.Retention.LegalHold == true && capture.Spec.Retention.Lock is "governance" or "compliance" ? " and " : "")}{(capture.Spec.Retention.Lock is "governance" or "compliance" ? $"a {capture.Spec.Retention.Lock} lock" : "")}, but {noLock}; nothing was captured";
                    CaptureConditions.Set(status, CaptureConditions.StorageReady, false, "ObjectLockUnavailable", message, generation, now);
                    return await FailAsync(capture, status, before, "ObjectLockUnavailable", message, deleting, cancellationToken);
                }

                CaptureConditions.Set(status, CaptureConditions.StorageReady, true, "ObjectLockEnabled", "the bucket has Object Lock", generation, now);
            }

            // No status write before the pods are touched: after a crash between the container patch
            // and the status write, the next reconcile finds the pods that already carry this
            // capture's container (its name holds the capture's UID) and takes exactly those again,
            // and the name makes a repeated injection a no-op.
            (string Reason, string Message)? notReady;
            (notReady, security) = await ChooseTargetsAsync(capture, status, now, cancellationToken);
            if (notReady is { } problem)
            {
                slots.Release(capture.Metadata.Uid);
                return await FailAsync(capture, status, before, problem.Reason, problem.Message, deleting, cancellationToken);
            }
        }

        if (status.Targets.Any(t => t.State == TargetState.Pending) && !deleting && capture.Spec.Stop != true)
        {
            if (await InjectAsync(capture, status, security, now, cancellationToken) is { } notInjected)
            {
                slots.Release(capture.Metadata.Uid);
                foreach (var target in status.Targets.Where(t => t.State == TargetState.Pending))
                {
                    Fail(target, notInjected.Reason, notInjected.Message);
                }

                return await FailAsync(capture, status, before, notInjected.Reason, notInjected.Message, deleting, cancellationToken);
            }
        }

        // 3. Early stop: the stop field, or the capture being deleted.
        if (deleting || capture.Spec.Stop == true)
        {
            foreach (var target in status.Targets.Where(t => t.State == TargetState.Pending))
            {
                Fail(target, "StoppedBeforeStart", "stopped or deleted before the capture container was added: nothing was captured here");
            }

            ingest.RequestStop(capture.Metadata.Uid);
        }

        // 4. What is true now, target by target (refused uploads first: a refused second session bears on the verdict).
        var refused = TakeRefusals(capture, status);
        var deadline = (status.StartTime ?? now) + verdict.Duration + grace;
        foreach (var target in status.Targets.Where(t => !TargetState.IsTerminal(t.State)))
        {
            await ObserveAsync(capture, target, now > deadline, cancellationToken);
        }

        TellEnded(capture, status);
        if (status.Targets.FirstOrDefault(t => t.Reason == CaptureConditions.UploadContested) is { } contested)
        {
            CaptureConditions.Set(status, CaptureConditions.Contested, true, CaptureConditions.UploadContested, $"pod {contested.Pod}: {contested.Message}", generation, now);
        }

        Summarize(capture, status, now);
        if (CapturePhase.IsTerminal(status.Phase))
        {
            await CompareEndsAsync(capture, status, cancellationToken);
            slots.Release(capture.Metadata.Uid);
            statusWrittenAt.TryRemove(capture.Metadata.Uid, out _);
            await AnnounceEndAsync(capture, status, cancellationToken);
            var ended = await FinishAsync(capture, status, before, deleting, cancellationToken);
            await AnnounceRefusalsAsync(capture, refused, cancellationToken);
            return ended;
        }

        var untilDeadline = deadline - now;
        var next = untilDeadline > TimeSpan.Zero && untilDeadline < resync ? untilDeadline + TimeSpan.FromMilliseconds(50) : resync;
        if (ProgressWriteTooSoon(capture, status) is { } wait)
        {
            // Only counters moved, and the status was written less than ProgressInterval ago: later.
            await AnnounceRefusalsAsync(capture, refused, cancellationToken);
            return ReconcileResult.After(wait < next ? wait : next);
        }

        await WriteStatusAsync(capture, status, before, cancellationToken);
        await AnnounceRefusalsAsync(capture, refused, cancellationToken);
        return ReconcileResult.After(next);
    }

    /// <summary>
    /// How long until the status may be written again, when only its progress changed (counters,
    /// findings so far) and it was written less than <see cref="ReconcilerOptions.ProgressInterval"/>
    /// ago; null when it is to be written now (or not changed at all). The status as read is
    /// <paramref name="capture"/>'s own: the reconcile changes only its clone.
    /// </summary>
    private TimeSpan? ProgressWriteTooSoon(PacketCapture capture, PacketCaptureStatus status)
    {
        if (!statusWrittenAt.TryGetValue(capture.Metadata.Uid, out var writtenAt))
        {
            return null;
        }

        var since = time.GetUtcNow() - writtenAt;
        if (since >= progressInterval || WithoutProgress(capture.Status ?? new PacketCaptureStatus()) != WithoutProgress(status))
        {
            return null;
        }

        return progressInterval - since;
    }

    /// <summary>The status as JSON without what moves while a capture runs: counters and findings so far.</summary>
    private static string WithoutProgress(PacketCaptureStatus status)
    {
        var copy = Clone(status)!;
        (copy.Packets, copy.DroppedByKernel, copy.FindingCount, copy.Findings) = (null, null, null, null);
        foreach (var target in copy.Targets)
        {
            (target.Packets, target.Bytes, target.DroppedByKernel) = (0, 0, 0);
            (target.Summary, target.Findings, target.FindingsOmitted) = (null, null, null);
        }

        return JsonSerializer.Serialize(copy);
    }

    /// <summary>
    /// Resolves the targets (the pods that already carry this capture's container first: an injection
    /// before a crash) and checks Pod Security and the per-pod cap; records the targets as Pending.
    /// </summary>
    private async Task<((string Reason, string Message)? Problem, PodSecurityVerdict? Security)> ChooseTargetsAsync(
        PacketCapture capture, PacketCaptureStatus status, DateTime now, CancellationToken cancellationToken)
    {
        var generation = capture.Metadata.Generation;
        var name = EphemeralContainerSpec.ContainerName(capture.Metadata.Uid);
        var injectedBefore = cluster.PodsWithContainer(capture.Metadata.NamespaceProperty, name);
        var resolution = injectedBefore.Count > 0
            ? new TargetResolution([.. injectedBefore.OrderBy(p => p.Metadata.Name, StringComparer.Ordinal)], null, null)
            : await targets.ResolveAsync(capture, cancellationToken);
        if (!resolution.Found)
        {
            CaptureConditions.Set(status, CaptureConditions.TargetsReady, false, resolution.Reason!, resolution.Message!, generation, now);
            return ((resolution.Reason!, resolution.Message!), null);
        }

        var security = await podSecurity.CheckAsync(capture.Metadata.NamespaceProperty, cancellationToken);
        if (!security.Allowed)
        {
            CaptureConditions.Set(status, CaptureConditions.TargetsReady, false, security.Reason, security.Message, generation, now);
            return ((security.Reason, security.Message), security);
        }

        foreach (var pod in resolution.Pods)
        {
            if (AtCaptureContainerCap(pod, name) is { } full)
            {
                CaptureConditions.Set(status, CaptureConditions.TargetsReady, false, "CaptureContainerLimit", full, generation, now);
                return (("CaptureContainerLimit", full), security);
            }
        }

        CaptureConditions.Set(status, CaptureConditions.TargetsReady, true, security.Reason, security.Message, generation, now);
        foreach (var pod in resolution.Pods)
        {
            addresses.Expect(Identity(capture, pod.Metadata.Name), TermsFor(capture, pod));
        }

        status.Targets = resolution.Pods.Select(p => new CaptureTargetStatus
        {
            Pod = p.Metadata.Name,
            Node = p.Spec.NodeName,
            Container = name,
            State = TargetState.Pending,
        }).ToList();
        status.StartTime = now;
        status.Phase = CapturePhase.Pending;
        status.Message = "adding capture containers";
        status.TargetSummary = string.Join(",", status.Targets.Select(t => t.Pod));
        return (null, security);
    }

    /// <summary>
    /// Adds the capture container to every Pending target (skipping pods that already have it), with
    /// one Event on each pod it was added to. <paramref name="checkedSecurity"/>: the Pod Security
    /// verdict of this reconcile, if it already has one.
    /// </summary>
    private async Task<(string Reason, string Message)?> InjectAsync(PacketCapture capture, PacketCaptureStatus status, PodSecurityVerdict? checkedSecurity, DateTime now,
        CancellationToken cancellationToken)
    {
        var generation = capture.Metadata.Generation;
        var security = checkedSecurity ?? await podSecurity.CheckAsync(capture.Metadata.NamespaceProperty, cancellationToken);
        if (!security.Allowed)
        {
            CaptureConditions.Set(status, CaptureConditions.TargetsReady, false, security.Reason, security.Message, generation, now);
            return (security.Reason, security.Message);
        }

        var name = EphemeralContainerSpec.ContainerName(capture.Metadata.Uid);
        foreach (var target in status.Targets.Where(t => t.State == TargetState.Pending))
        {
            if (await cluster.GetPodAsync(capture.Metadata.NamespaceProperty, target.Pod, cancellationToken) is not { } pod)
            {
                addresses.Unbind(Identity(capture, target.Pod));
                var gone = $"pod '{target.Pod}' was deleted before the capture container could be added";
                CaptureConditions.Set(status, CaptureConditions.Injected, false, "PodDeleted", gone, generation, now);
                return ("PodDeleted", gone);
            }

            custody?.Witness(capture, pod, name);
            addresses.Expect(Identity(capture, target.Pod), TermsFor(capture, pod));
            if (pod.Spec.EphemeralContainers?.Any(c => c.Name == name) != true)
            {
                if (AtCaptureContainerCap(pod, name) is { } full)
                {
                    CaptureConditions.Set(status, CaptureConditions.TargetsReady, false, "CaptureContainerLimit", full, generation, now);
                    return ("CaptureContainerLimit", full);
                }

                using var inject = Tracing.CaptureTracing.StartInject(capture.Metadata.NamespaceProperty, capture.Metadata.Name, target.Pod);
                var issued = tokens.Issue(Identity(capture, target.Pod));
                var inSecret = TokenDelivery == TokenDelivery.Secret;
                var container = EphemeralContainerSpec.Build(capture, target.Pod, options.AgentImage, options.IngestUrl,
                    inSecret ? EphemeralContainerSpec.TokenFromSecret(UploadTokenSecret.NameFor(capture.Metadata.Uid, target.Pod)) : EphemeralContainerSpec.TokenInSpec(issued),
                    security.AddNetRaw, IngestAuthority(), traceParent: inject?.Id);
                try
                {
                    if (inSecret)
                    {
                        // The token first, in a Secret the kubelet hands the container: never a literal in the pod spec.
                        await UploadTokenSecret.EnsureAsync(kubernetes, capture, target.Pod, issued, cancellationToken);
                    }

                    var patch = "{\"spec\":{\"ephemeralContainers\":[" + KubernetesJson.Serialize(container) + "]}}";
                    // The pod as patched joins the cache: the next reconcile sees the container even before the watch does.
                    cluster.Pods.Offer(await kubernetes.CoreV1.PatchNamespacedPodEphemeralcontainersAsync(
                        new V1Patch(patch, V1Patch.PatchType.StrategicMergePatch), target.Pod, capture.Metadata.NamespaceProperty, cancellationToken: cancellationToken));
                }
                catch (k8s.Autorest.HttpOperationException e) when ((int)e.Response.StatusCode is 403 or 404 or 422)
                {
                    var message = e.Request.RequestUri.AbsolutePath.Contains("/secrets", StringComparison.Ordinal)
                        ? $"could not create the upload token Secret for pod '{target.Pod}': {StatusMessage(e)}"
                        : $"could not add the capture container to pod '{target.Pod}': {StatusMessage(e)}";
                    CaptureConditions.Set(status, CaptureConditions.Injected, false, "InjectionFailed", message, generation, now);
                    return ("InjectionFailed", message);
                }

                // One Event per injection, on the pod (kubectl describe pod): who captures there and why.
                // The capture itself records it in its Injected condition.
                await events.OnPodAsync(pod, "Normal", "CaptureStarted",
                    $"capture container {name} added for PacketCapture {capture.Metadata.Name}: {capture.Spec.Reason}" + (security.AddNetRaw ? "" : "; " + security.Message),
                    cancellationToken);
            }

            target.State = TargetState.Starting;
        }

        var injected = $"capture container {name} added to {string.Join(", ", status.Targets.Select(t => t.Pod))}";
        CaptureConditions.Set(status, CaptureConditions.Injected, true, "ContainersAdded", injected, generation, now);
        return null;
    }

    /// <summary>
    /// The CA the agent verifies a TLS ingest against (https:// ingest URL); null for a plain h2c one.
    /// Not loaded yet (the serving certificate is read at start): the reconcile fails and is retried.
    /// </summary>
    private string? IngestAuthority() =>
        !EphemeralContainerSpec.IsTls(options.IngestUrl) ? null
        : ingestAuthority?.Invoke() ?? throw new InvalidOperationException(
            "the ingest serves TLS but its CA is not loaded yet (ServingCertificate): the capture container is added once it is");

    private string? AtCaptureContainerCap(V1Pod pod, string name)
    {
        var ours = pod.Spec.EphemeralContainers?.Any(c => c.Name == name) == true;
        var others = (pod.Spec.EphemeralContainers ?? []).Count(c => EphemeralContainerSpec.CaptureUidOf(c.Name) is not null && c.Name != name);
        return !ours && others >= options.MaxCaptureContainersPerPod
            ? $"pod '{pod.Metadata.Name}' already has {others} capture containers, the most allowed (ephemeral containers can never be removed; restart the pod to clear them)"
            : null;
    }

    private static void ShowSummary(CaptureTargetStatus target, TcpSummaryReport summary)
    {
        // The findings go to their own field, typed and bounded; not twice. The connection
        // records are for comparing two ends, not for the status.
        target.Summary = JsonSerializer.SerializeToElement(summary with { Findings = [], FindingsOmitted = 0, ConnectionsWithFindings = [], ConnectionsWithFindingsOmitted = 0, ConnectionsWithoutFindings = [] }, SummaryJsonContext.Default.TcpSummaryReport);
        target.Findings = StatusFindings.OfTarget(summary, out var omitted);
        target.FindingsOmitted = omitted > 0 ? omitted : null;
    }

    /// <summary>
    /// The container's state and the ingest's view of the upload make the target's state. A stored pcap
    /// counts as the target's evidence only once its capture agent confirmed it: the agent exits 0
    /// only after the ingest told its own session Stored (or exits with an error after printing the
    /// stored SHA-256). A pcap stored without that confirmation came from another session, someone
    /// with the upload token inside the pod, and the target fails as contested.
    /// </summary>
    private async Task ObserveAsync(PacketCapture capture, CaptureTargetStatus target, bool pastDeadline, CancellationToken cancellationToken)
    {
        var identity = Identity(capture, target.Pod);
        var upload = await ingest.GetAsync(identity, cancellationToken);
        if (upload is not null)
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
                target.Artifact = new CaptureArtifact
                {
                    Uri = artifact.Uri,
                    Size = artifact.Size,
                    Sha256 = artifact.Sha256,
                    ExpiresAt = artifact.ExpiresAt?.UtcDateTime,
                    Lock = artifact.Retention?.Lock is "governance" or "compliance" ? artifact.Retention.Lock : null,
                    LegalHold = artifact.Retention?.LegalHold == true ? true : null,
                };
            }

            if (upload.Phase == UploadPhase.Failed)
            {
                Fail(target, "UploadFailed", $"the upload failed: {upload.Error ?? "no reason given"}");
                return;
            }
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

            Fail(target, "PodDeleted", $"pod '{target.Pod}' was deleted during the capture");
            return;
        }

        custody?.Witness(capture, pod, target.Container);
        addresses.Expect(identity, TermsFor(capture, pod)); // again after an operator restart or on a new leader
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
            Fail(target, "ImagePullFailed", $"the capture image '{container!.Image}' cannot be pulled ({waiting.Reason}): {waiting.Message}");
        }
        else if (state?.Waiting is { Reason: "CreateContainerError" or "CreateContainerConfigError" or "RunContainerError" } failedToStart)
        {
            Fail(target, "ContainerFailed", $"the capture container could not start ({failedToStart.Reason}): {failedToStart.Message}");
        }
        else if (terminated is not null)
        {
            if (terminated.ExitCode != 0 && target.RefusedSessions > 0)
            {
                Contest(identity, target, $"the capture agent was refused: another agent session holds the target's upload (someone with the upload token, inside pod '{target.Pod}', connected first); the agent exited with code {terminated.ExitCode}{(string.IsNullOrEmpty(detail) ? "" : ": " + detail)}. What the other session uploads is never this capture's evidence");
            }
            else if (terminated.ExitCode != 0)
            {
                Fail(target, "AgentCrashed", $"the capture agent exited with code {terminated.ExitCode}{(string.IsNullOrEmpty(detail) ? "" : ": " + detail)}");
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
            Fail(target, "DeadlineExceeded", target.State switch
            {
                TargetState.Starting => "the capture container never started before the deadline (duration + grace)",
                TargetState.Uploading => "the agent finished but the ingest never confirmed the stored pcap before the deadline (duration + grace)",
                _ => "no end of capture before the deadline (duration + grace): the agent or its stream went silent",
            });
        }
    }

    /// <summary>The target's pcap is not its agent's: it fails, and the ingest records it in the pcap's manifest.</summary>
    private void Contest(CaptureIdentity identity, CaptureTargetStatus target, string message)
    {
        Fail(target, CaptureConditions.UploadContested, message + "; it is kept, marked contested in its manifest, and is never clean evidence");
        if (target.Artifact is { } artifact)
        {
            artifact.Contested = true;
        }

        ingest.MarkContested(identity, target.Message!);
    }

    /// <summary>
    /// Tells the ingest which targets have ended (it accepts no upload for them any more) and, for a
    /// contested one, again that it is contested (after a restart it knows only what it is told).
    /// </summary>
    private void TellEnded(PacketCapture capture, PacketCaptureStatus status)
    {
        foreach (var target in status.Targets.Where(t => TargetState.IsTerminal(t.State)))
        {
            var identity = Identity(capture, target.Pod);
            addresses.Close(identity, target.State == TargetState.Succeeded ? "its pcap is stored" : $"{target.State}: {target.Reason}");
            if (target.Reason == CaptureConditions.UploadContested)
            {
                ingest.MarkContested(identity, target.Message ?? CaptureConditions.UploadContested);
            }
        }
    }

    /// <summary>The capture's own terms for a target's upload, as the ingest holds every stream to them whatever the agent claims.</summary>
    private static UploadTerms TermsFor(PacketCapture capture, V1Pod pod) => UploadTerms.Of(capture, pod);

    /// <summary>
    /// Refused uploads the ingest counted since the last reconcile, added to each target's status.
    /// They stay pending in the ingest until <see cref="AnnounceRefusalsAsync"/> runs after the status
    /// write, so a failed write loses none.
    /// </summary>
    private List<(CaptureIdentity Target, UploadRefusals Refusals)> TakeRefusals(PacketCapture capture, PacketCaptureStatus status)
    {
        var taken = new List<(CaptureIdentity, UploadRefusals)>();
        foreach (var target in status.Targets)
        {
            var identity = Identity(capture, target.Pod);
            var refusals = addresses.Refusals(identity);
            if (refusals.Count > 0)
            {
                target.RefusedUploads = (target.RefusedUploads ?? 0) + refusals.Count;
                if (refusals.Sessions > 0)
                {
                    target.RefusedSessions = (target.RefusedSessions ?? 0) + refusals.Sessions;
                }

                target.LastRefusal = refusals.LastMessage;
                taken.Add((identity, refusals));
            }
        }

        return taken;
    }

    /// <summary>After the status holds them: one Warning Event per target, and the ingest forgets them.</summary>
    private async Task AnnounceRefusalsAsync(PacketCapture capture, List<(CaptureIdentity Target, UploadRefusals Refusals)> refused, CancellationToken cancellationToken)
    {
        foreach (var (target, refusals) in refused)
        {
            addresses.Surfaced(target, refusals);
            logger.LogWarning("{Capture} pod {Pod}: {Count} upload(s) refused: {Message}", capture.Key, target.Pod, refusals.Count, refusals.LastMessage);
            await events.OnCaptureAsync(capture, "Warning", "UploadRefused",
                $"pod {target.Pod}: {refusals.Count} upload(s) refused (the target's upload was not touched): {refusals.LastMessage}", cancellationToken);
        }
    }

    private static void Fail(CaptureTargetStatus target, string reason, string message)
    {
        target.State = TargetState.Failed;
        target.Reason = reason;
        target.Message = message;
    }

    /// <summary>
    /// Targets captured over the same window are compared two by two (the ends of the conversations
    /// between them): what only both ends show goes to the capture's findings. Needs the agents'
    /// manifests, which the ingest keeps while the capture exists.
    /// </summary>
    private async Task CompareEndsAsync(PacketCapture capture, PacketCaptureStatus status, CancellationToken cancellationToken)
    {
        var succeeded = status.Targets.Where(t => t.State == TargetState.Succeeded).ToList();
        var summaries = new List<(string Pod, TcpSummaryReport Summary, long Dropped)>();
        foreach (var target in succeeded)
        {
            if ((await ingest.GetAsync(Identity(capture, target.Pod), cancellationToken))?.Manifest is { Summary: { } summary } manifest)
            {
                summaries.Add((target.Pod, summary, manifest.PacketsDroppedByKernel));
            }
        }

        for (var i = 0; i < summaries.Count; i++)
        {
            for (var j = i + 1; j < summaries.Count; j++)
            {
                var comparison = EndComparison.Compare(summaries[i].Summary, summaries[j].Summary, capturesMissedPackets: summaries[i].Dropped + summaries[j].Dropped > 0);
                if (comparison.Count > 0)
                {
                    status.Findings = StatusFindings.WithComparison(status.Findings, summaries[i].Pod, summaries[j].Pod, comparison);
                    status.FindingCount = (status.FindingCount ?? 0) + comparison.Count(f => f.Severity != FindingSeverity.Info);
                }
            }
        }
    }

    /// <summary>Phase, counters and the Complete condition from the targets.</summary>
    private static void Summarize(PacketCapture capture, PacketCaptureStatus status, DateTime now)
    {
        var list = status.Targets;
        status.TargetSummary = string.Join(",", list.Select(t => t.Pod));
        status.Packets = list.Sum(t => t.Packets);
        status.DroppedByKernel = list.Sum(t => t.DroppedByKernel);
        status.FindingCount = StatusFindings.Count(list);
        status.Findings = StatusFindings.OfCapture(list) is { Count: > 0 } findings ? findings : null;
        var generation = capture.Metadata.Generation;
        if (list.All(t => t.State == TargetState.Succeeded))
        {
            status.Phase = CapturePhase.Succeeded;
            status.Message = $"{status.Packets} packets from {list.Count} pod(s) stored and verified";
            status.CompletionTime = now;
            CaptureConditions.Set(status, CaptureConditions.Complete, true, "Succeeded", status.Message, generation, now);
        }
        else if (list.All(t => TargetState.IsTerminal(t.State)))
        {
            var failed = list.First(t => t.State == TargetState.Failed);
            var reason = failed.Reason ?? "Failed";
            status.Phase = CapturePhase.Failed;
            status.Message = $"pod {failed.Pod}: {failed.Reason}: {failed.Message}";
            status.CompletionTime = now;
            CaptureConditions.Set(status, CaptureConditions.Complete, false, reason, status.Message, generation, now);
        }
        else
        {
            var active = list.Where(t => !TargetState.IsTerminal(t.State)).ToList();
            status.Phase = active.All(t => t.State == TargetState.Uploading) ? CapturePhase.Uploading
                : active.Any(t => t.State is TargetState.Capturing or TargetState.Uploading) ? CapturePhase.Running
                : CapturePhase.Pending;
            status.Message = status.Phase switch
            {
                CapturePhase.Uploading => "capture finished; storing the pcap",
                CapturePhase.Running => $"capturing on {active.Count(t => t.State == TargetState.Capturing)} pod(s)",
                _ => "waiting for the capture containers to start",
            };
            CaptureConditions.Set(status, CaptureConditions.Complete, null, status.Phase, status.Message, generation, now);
        }
    }

    private async Task<ReconcileResult> FailAsync(PacketCapture capture, PacketCaptureStatus status, string before, string reason, string message, bool deleting, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow().UtcDateTime;
        status.Phase = CapturePhase.Failed;
        status.Message = message;
        status.CompletionTime ??= now;
        CaptureConditions.Set(status, CaptureConditions.Complete, false, reason, message, capture.Metadata.Generation, now);
        await AnnounceEndAsync(capture, status, cancellationToken);
        return await FinishAsync(capture, status, before, deleting, cancellationToken);
    }

    private async Task AnnounceEndAsync(PacketCapture capture, PacketCaptureStatus status, CancellationToken cancellationToken)
    {
        if (CapturePhase.IsTerminal(capture.Status?.Phase))
        {
            return;
        }

        var reason = CaptureConditions.Find(status, CaptureConditions.Complete)?.Reason ?? status.Phase!;
        OperatorMetrics.CapturesEnded.Add(1, new KeyValuePair<string, object?>("phase", status.Phase));
        if (reason == CaptureConditions.UploadContested && audit is not null)
        {
            return; // the audit line 'contested' of the pod announced it, with its Event
        }

        await events.OnCaptureAsync(capture, status.Phase == CapturePhase.Succeeded ? "Normal" : "Warning", reason, status.Message ?? "", cancellationToken);
    }

    /// <summary>Writes the final status; a deleted capture then lets go of its finalizer.</summary>
    private async Task<ReconcileResult> FinishAsync(PacketCapture capture, PacketCaptureStatus status, string before, bool deleting, CancellationToken cancellationToken)
    {
        IReadOnlyList<TargetDisposal> disposals = [];
        if (deleting && CaptureFinalizer.IsPresent(capture) && retention is not null)
        {
            // Deleting the capture deletes what it stored, unless a lock or legal hold keeps it: the status says which, until when.
            disposals = await retention.DisposeAsync(status.Targets.Where(t => t.Artifact is not null).Select(t => Identity(capture, t.Pod)), cancellationToken);
            foreach (var disposal in disposals)
            {
                status.Targets.First(t => t.Pod == disposal.Pod).Artifact!.Kept = disposal.Kept ?? "deleted with the PacketCapture";
            }
        }

        capture = await WriteStatusAsync(capture, status, before, cancellationToken);
        if (deleting && CaptureFinalizer.IsPresent(capture))
        {
            // Marked before the finalizer goes: the object is gone the moment it does, and the watch's
            // Deleted may reach Deleted() on another thread before RemoveAsync returns here; unmarked,
            // it would take this for a deletion without the finalizer and record 'deleted' a second time.
            // A reconcile of a stale view (the mark already there) neither adds nor takes it away.
            var marked = deletionsRecorded.TryAdd(capture.Metadata.Uid, true);
            try
            {
                await CaptureFinalizer.RemoveAsync(kubernetes, capture, cancellationToken);
            }
            catch when (marked)
            {
                deletionsRecorded.TryRemove(capture.Metadata.Uid, out _);
                throw;
            }

            if (audit is not null)
            {
                var what = disposals.Count == 0
                    ? "nothing was stored"
                    : string.Join("; ", disposals.Select(d => d.Deleted ? $"deleted {d.Uri} and its manifest" : $"{d.Uri} and its manifest {d.Kept}"));
                await audit.RecordAsync(capture, new Transition(AuditEvent.Deleted, "Normal", "Deleted", $"the PacketCapture was deleted: {what}"), cancellationToken);
            }
        }

        return ReconcileResult.Done;
    }

    /// <summary>
    /// The PacketCapture is gone. When the operator let it go (its finalizer), that is recorded
    /// already. Otherwise it went without: someone broke glass, or it was deleted before the finalizer
    /// was added. Its agents are told to stop (each stores what it captured, with the capture's lock
    /// and requester from its upload checkpoint), and the audit log records the deletion.
    /// </summary>
    public void Deleted(PacketCapture capture)
    {
        if (deletionsRecorded.TryRemove(capture.Metadata.Uid, out _))
        {
            return;
        }

        ingest.RequestStop(capture.Metadata.Uid);
        var why = CaptureFinalizer.BreakGlass(capture) is { } reason ? $"someone broke glass: {reason}" : "it was deleted before the finalizer was added";
        var message = $"the PacketCapture was deleted without the operator's finalizer ({why}): its agents were told to stop; " +
            "what they store is kept, with the capture's lock and requester, until its retention ends";
        logger.LogWarning("{Capture}: {Message}", capture.Key, message);
        if (audit is not null)
        {
            _ = Task.Run(async () =>
            {
                try
                {
                    await audit.RecordAsync(capture, new Transition(AuditEvent.Deleted, "Warning", "DeletedWithoutFinalizer", message), CancellationToken.None);
                }
                catch (Exception e)
                {
                    logger.LogWarning("{Capture}: the Event of its deletion was not recorded: {Error}", capture.Key, e.Message);
                }
            });
        }
    }

    /// <summary>PUT on the status subresource with the read resourceVersion: a stale view gets 409 and runs again.</summary>
    private async Task<PacketCapture> WriteStatusAsync(PacketCapture capture, PacketCaptureStatus status, string before, CancellationToken cancellationToken)
    {
        if (JsonSerializer.Serialize(status) == before)
        {
            return capture;
        }

        var next = new PacketCapture { Metadata = capture.Metadata, Spec = capture.Spec, Status = status };
        var result = await kubernetes.CustomObjects.ReplaceNamespacedCustomObjectStatusAsync<PacketCapture>(
            next, PacketCapture.Group, PacketCapture.Version, capture.Metadata.NamespaceProperty, PacketCapture.Plural, capture.Metadata.Name,
            cancellationToken: cancellationToken);
        logger.LogDebug("{Capture}: {Phase} - {Message}", capture.Key, status.Phase, status.Message);
        if (!CapturePhase.IsTerminal(status.Phase))
        {
            statusWrittenAt[capture.Metadata.Uid] = time.GetUtcNow();
        }

        written?.Invoke(result);
        if (audit is not null)
        {
            await audit.RecordTransitionsAsync(capture, status, cancellationToken);
        }

        return result;
    }

    private static CaptureIdentity Identity(PacketCapture capture, string pod) =>
        new(capture.Metadata.Uid, capture.Metadata.NamespaceProperty, capture.Metadata.Name, pod);

    private static PacketCaptureStatus? Clone(PacketCaptureStatus? status) =>
        status is null ? null : KubernetesJson.Deserialize<PacketCaptureStatus>(KubernetesJson.Serialize(status));

    private static string StatusMessage(k8s.Autorest.HttpOperationException e)
    {
        try
        {
            return KubernetesJson.Deserialize<V1Status>(e.Response.Content).Message ?? e.Message;
        }
        catch (JsonException)
        {
            return e.Message;
        }
    }
}
