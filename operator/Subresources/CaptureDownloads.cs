using System.Globalization;
using System.Net;
using k8s;
using k8s.Autorest;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Events;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Storage;
using Microsoft.Extensions.Options;

namespace KubeCapture.Operator.Subresources;

/// <summary>
/// GET .../namespaces/NS/packetcaptures/NAME/{pcap,manifest,follow}[?pod=POD]: the stored pcap
/// streamed from object storage (constant memory, Content-Length, SHA-256 header), its manifest,
/// or the live pcap while the capture runs. Each request is authenticated (front proxy) and
/// authorized (SubjectAccessReview) first; each download and follow is recorded as an Event on the
/// PacketCapture and a log line: who, what, when.
/// </summary>
public sealed class CaptureDownloads(
    IKubernetes kubernetes,
    FrontProxyAuthenticator authenticator,
    AccessReview access,
    IArtifactStore store,
    UploadRegistry registry,
    LiveRecordFeed live,
    IOptions<SubresourcesOptions> options,
    IOptions<FollowLimits> followLimits,
    ILogger<CaptureDownloads> logger,
    CaptureEvents events,
    TimeProvider time,
    IHostApplicationLifetime lifetime,
    StreamRelay? relay = null)
{
    /// <summary>Why a live follow breaks off when this replica shuts down (a rollout, a drain): the follower follows again through another.</summary>
    public const string ShuttingDown = "the operator replica serving it is shutting down (a rollout, an upgrade or a drain); its stream is broken off at its last whole record, and kubectl capture follow follows again through another replica";

    public async Task HandleAsync(HttpContext context, string ns, string name, string subresource)
    {
        var cancellationToken = context.RequestAborted;
        var (user, refusal) = await authenticator.AuthenticateAsync(context, requireUser: true, cancellationToken);
        if (user is null)
        {
            logger.LogWarning("refused {Subresource} of {Namespace}/{Capture} from {Peer}: {Refusal}", subresource, ns, name, context.Connection.RemoteIpAddress, refusal);
            await SubresourcesApi.WriteStatusAsync(context, 401, "Unauthorized", refusal!);
            return;
        }

        var pod = context.Request.Query["pod"].FirstOrDefault();
        try
        {
            var (allowed, reason) = await access.MayGetAsync(user, ns, name, subresource, cancellationToken);
            if (!allowed)
            {
                logger.LogWarning("denied {Subresource} of {Namespace}/{Capture} to {User}: {Reason}", subresource, ns, name, user, reason);
            }

            if (await SubresourcesApi.ReadCaptureAsync(context, kubernetes, user, allowed, "get", ns, name, subresource) is not { } capture)
            {
                return;
            }

            var (target, problem) = ChooseTarget(capture, pod);
            if (target is null)
            {
                await SubresourcesApi.WriteStatusAsync(context, problem!.Value.Code, problem.Value.Reason, problem.Value.Message, name);
                return;
            }

            var snapshot = SnapshotAsked(capture, target, subresource, context.Request.Query[ExtensionApi.SnapshotParameter].FirstOrDefault(), out var badSnapshot);
            if (badSnapshot is { } bad)
            {
                await SubresourcesApi.WriteStatusAsync(context, bad.Code, bad.Reason, bad.Message, name);
                return;
            }

            var identity = new CaptureIdentity(capture.Metadata.Uid, ns, name, target.Pod, snapshot);
            StoredCaptureManifest? stored;
            try
            {
                stored = await store.FindStoredAsync(identity, cancellationToken);
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                await StorageUnreachableAsync(context, name, e);
                return;
            }

            if (stored is not null && stored.CaptureUid != capture.Metadata.Uid)
            {
                stored = null; // an earlier capture of the same name
            }

            if (stored is null && snapshot > 0)
            {
                await SubresourcesApi.WriteStatusAsync(context, 404, "NotFound",
                    $"snapshot {snapshot} of capture {name} pod {target.Pod} is not stored (status.snapshots lists those that are: {string.Join(", ", (capture.Status?.Snapshots ?? []).Where(s => s.Pod == target.Pod).Select(s => s.Index).DefaultIfEmpty()) switch { "0" => "none yet", var listed => listed }})", name);
                return;
            }

            if (stored is null && (subresource != ExtensionApi.Follow || TargetState.IsTerminal(target.State) || CapturePhase.IsTerminal(capture.Status?.Phase)))
            {
                var gone = NotStored(capture, target, subresource);
                await SubresourcesApi.WriteStatusAsync(context, gone.Code, gone.Reason, gone.Message, name);
                return;
            }

            if (stored is null)
            {
                await FollowThroughAnyReplicaAsync(context, capture, identity, user, cancellationToken);
            }
            else if (subresource == ExtensionApi.Manifest)
            {
                await SendManifestAsync(context, capture, identity, target, user, cancellationToken);
            }
            else
            {
                await SendStoredAsync(context, capture, stored, user, subresource, cancellationToken);
            }
        }
        catch (HttpOperationException e)
        {
            logger.LogError("{Subresource} of {Namespace}/{Capture} for {User}: the Kubernetes API answered {Status}: {Error}", subresource, ns, name, user, (int)e.Response.StatusCode, e.Message);
            await SubresourcesApi.WriteStatusAsync(context, 503, "ServiceUnavailable", $"the Kubernetes API answered {(int)e.Response.StatusCode} to the operator: {e.Response.Content}", name);
        }
        catch (HttpRequestException e)
        {
            await SubresourcesApi.WriteStatusAsync(context, 503, "ServiceUnavailable", $"the operator cannot reach the Kubernetes API: {e.Message}", name);
        }
    }

    /// <summary>The target the request means, or the Status that says why there is none.</summary>
    internal static (CaptureTargetStatus? Target, (int Code, string Reason, string Message)? Problem) ChooseTarget(PacketCapture capture, string? pod)
    {
        var name = capture.Metadata.Name;
        var targets = capture.Status?.Targets ?? [];
        var names = string.Join(", ", targets.Select(t => t.Pod));
        if (pod is { Length: > 0 })
        {
            return targets.FirstOrDefault(t => t.Pod == pod) is { } chosen ? (chosen, null)
                : (null, (404, "NotFound", targets.Count == 0
                    ? $"capture {name} has no target pods yet (phase {capture.Status?.Phase ?? CapturePhase.Pending}), so no pod \"{pod}\""
                    : $"capture {name} has no target pod \"{pod}\" (its targets: {names})"));
        }

        return targets.Count switch
        {
            1 => (targets[0], null),
            0 => (null, CapturePhase.IsTerminal(capture.Status?.Phase)
                ? (404, "NotFound", $"capture {name} ended {capture.Status!.Phase} without a target pod: {capture.Status.Message}")
                : (409, "Conflict", $"capture {name} has no target pod yet (phase {capture.Status?.Phase ?? CapturePhase.Pending}); try again when it runs")),
            _ => (null, (400, "BadRequest", $"capture {name} has {targets.Count} target pods ({names}): choose one with ?pod=")),
        };
    }

    /// <summary>?snapshot=N: snapshot N of the target's recording (0: its own pcap); what is wrong with the request otherwise.</summary>
    private static int SnapshotAsked(PacketCapture capture, CaptureTargetStatus target, string subresource, string? text, out (int Code, string Reason, string Message)? problem)
    {
        problem = null;
        if (text is null)
        {
            return 0;
        }

        var name = capture.Metadata.Name;
        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var index) || index < 1)
        {
            problem = (400, "BadRequest", $"?{ExtensionApi.SnapshotParameter}={text} is not a snapshot number: use 1 for the first snapshot of pod {target.Pod}");
        }
        else if (capture.Spec.Recorder is null)
        {
            problem = (400, "BadRequest", $"capture {name} is not a flight recording (it has no spec.recorder): it has no snapshots; download its pcap without ?{ExtensionApi.SnapshotParameter}=");
        }
        else if (subresource == ExtensionApi.Follow)
        {
            problem = (400, "BadRequest", $"a snapshot is not followed live: download it once it is listed in status.snapshots");
        }

        return problem is null ? index : 0;
    }

    /// <summary>Why a target has no stored pcap: still capturing (409), gone by retention (410), never stored (404).</summary>
    internal static (int Code, string Reason, string Message) NotStored(PacketCapture capture, CaptureTargetStatus target, string subresource)
    {
        var name = capture.Metadata.Name;
        if (target.Artifact is { } artifact)
        {
            return artifact.ExpiresAt is { } expired
                ? (410, "Gone", $"the pcap of capture {name} pod {target.Pod} expired at {expired.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture)} and was deleted by retention")
                : (410, "Gone", $"the pcap of capture {name} pod {target.Pod} is no longer in object storage ({artifact.Uri} was deleted)");
        }

        if (!TargetState.IsTerminal(target.State) && !CapturePhase.IsTerminal(capture.Status?.Phase))
        {
            return (409, "Conflict", subresource == ExtensionApi.Manifest
                ? $"capture {name} is still capturing pod {target.Pod} (state {target.State}); the manifest is written when it ends"
                : $"capture {name} is still capturing pod {target.Pod} (state {target.State}); use follow to stream it live, or download it when the capture has ended");
        }

        return (404, "NotFound", $"capture {name} stored no pcap for pod {target.Pod}: {target.State}{(target.Reason is { } r ? $" ({r})" : "")}{(target.Message is { } m ? ": " + m : "")}");
    }

    /// <summary>The manifest as stored: the signed envelope, so that what a user downloads is what <c>verify</c> checks.</summary>
    private async Task SendManifestAsync(HttpContext context, PacketCapture capture, CaptureIdentity identity, CaptureTargetStatus target, RemoteUser user, CancellationToken cancellationToken)
    {
        byte[]? signed;
        try
        {
            signed = await store.ReadStoredManifestAsync(identity, cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            await StorageUnreachableAsync(context, capture.Metadata.Name, e);
            return;
        }

        if (signed is null)
        {
            var (code, reason, message) = NotStored(capture, target, ExtensionApi.Manifest);
            await SubresourcesApi.WriteStatusAsync(context, code, reason, message, capture.Metadata.Name);
            return;
        }

        context.Response.ContentType = "application/json";
        context.Response.ContentLength = signed.Length;
        await context.Response.Body.WriteAsync(signed, cancellationToken);
        await RecordAsync(capture, "ManifestRead", $"{user} read the manifest of pod {target.Pod}", cancellationToken);
    }

    private async Task SendStoredAsync(HttpContext context, PacketCapture capture, StoredCaptureManifest stored, RemoteUser user, string subresource, CancellationToken cancellationToken)
    {
        Stream? body;
        try
        {
            body = await store.OpenStoredAsync(stored, cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            await StorageUnreachableAsync(context, capture.Metadata.Name, e);
            return;
        }

        if (body is null)
        {
            var target = capture.Status!.Targets.First(t => t.Pod == stored.Pod);
            var (code, reason, message) = NotStored(capture, new CaptureTargetStatus { Pod = target.Pod, State = target.State, Artifact = target.Artifact ?? new CaptureArtifact { Uri = stored.Uri, ExpiresAt = stored.ExpiresAt?.UtcDateTime } }, subresource);
            await SubresourcesApi.WriteStatusAsync(context, code, reason, message, capture.Metadata.Name);
            return;
        }

        await using (body)
        {
            context.Response.ContentType = ExtensionApi.PcapContentType;
            context.Response.ContentLength = stored.Size;
            context.Response.Headers[ExtensionApi.Sha256Header] = stored.Sha256;
            context.Response.Headers.ContentDisposition = $"attachment; filename=\"{capture.Metadata.Name}-{stored.Pod}.pcap\"";
            var verb = subresource == ExtensionApi.Follow ? "followed (stored)" : "downloaded";
            logger.LogInformation("{User} {Verb} the pcap of {Namespace}/{Capture} pod {Pod} ({Size} bytes, sha256 {Sha256}) from {Client} via {Peer}",
                user, verb, stored.Namespace, stored.CaptureName, stored.Pod, stored.Size, stored.Sha256, ClientAddress(context), context.Connection.RemoteIpAddress?.ToString());
            await body.CopyToAsync(context.Response.Body, 1 << 16, cancellationToken);
            await RecordAsync(capture, subresource == ExtensionApi.Follow ? "Followed" : "Downloaded", $"{user} {verb} the pcap of pod {stored.Pod} ({stored.Size} bytes, sha256 {stored.Sha256})", CancellationToken.None);
        }
    }

    /// <summary>
    /// A live follow on whichever replica the Service chose: relayed from the replica holding the
    /// stream (<see cref="StreamRelay"/>), else followed here; a local follow that has passed nothing
    /// on yet moves to the relay when another replica takes the stream (the agent connected there).
    /// </summary>
    private async Task FollowThroughAnyReplicaAsync(HttpContext context, PacketCapture capture, CaptureIdentity identity, RemoteUser user, CancellationToken cancellationToken)
    {
        logger.LogInformation("{User} started following {Namespace}/{Capture} pod {Pod} live", user, identity.Namespace, identity.CaptureName, identity.Pod);
        await RecordAsync(capture, "Followed", $"{user} started following pod {identity.Pod} live", cancellationToken);
        using var ended = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, lifetime.ApplicationStopping);
        ended.CancelAfter(FollowLimit(capture));
        try
        {
            while (relay is null || await relay.RelayAsync(context, identity, user, ended.Token) == RelayOutcome.NotElsewhere)
            {
                if (!await FollowAsync(context, capture, identity, user, relayedTo: null, ended.Token, cancellationToken))
                {
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (lifetime.ApplicationStopping.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            logger.LogInformation("follow of {Namespace}/{Capture} pod {Pod} by {User}: {Why}", identity.Namespace, identity.CaptureName, identity.Pod, user, ShuttingDown);
            context.Abort();
        }
        catch (OperationCanceledException) when (ended.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            logger.LogWarning("follow of {Namespace}/{Capture} pod {Pod} by {User} ended: the capture ran past its duration and grace without a replica streaming it", identity.Namespace, identity.CaptureName, identity.Pod, user);
        }
        catch (Exception e) when (cancellationToken.IsCancellationRequested && e is OperationCanceledException or IOException)
        {
            logger.LogInformation("follow of {Namespace}/{Capture} pod {Pod} by {User} ended: the follower went away", identity.Namespace, identity.CaptureName, identity.Pod, user);
        }
    }

    /// <summary>
    /// The holder's side of a relay (<see cref="RelayedFollows"/>): this replica's live stream of the
    /// target to replica <paramref name="relayedTo"/>, for <paramref name="follower"/>, with the memory
    /// bound and the cut-off of any follower here.
    /// </summary>
    internal async Task ServeRelayAsync(HttpContext context, PacketCapture capture, CaptureIdentity identity, RemoteUser follower, string relayedTo)
    {
        using var ended = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, lifetime.ApplicationStopping);
        ended.CancelAfter(FollowLimit(capture));
        logger.LogInformation("relaying the live stream of {Namespace}/{Capture} pod {Pod} to replica {Replica} for {User}", identity.Namespace, identity.CaptureName, identity.Pod, relayedTo, follower);
        await FollowAsync(context, capture, identity, follower, relayedTo, ended.Token, context.RequestAborted);
    }

    /// <summary>
    /// Streams this replica's live feed of the target; true when it stopped before passing a byte on
    /// because another replica took the stream (only for a follower of this replica's own, <paramref name="relayedTo"/> null).
    /// </summary>
    private async Task<bool> FollowAsync(HttpContext context, PacketCapture capture, CaptureIdentity identity, RemoteUser user, string? relayedTo, CancellationToken until, CancellationToken cancellationToken)
    {
        using var subscription = live.Subscribe(identity);
        using var ended = CancellationTokenSource.CreateLinkedTokenSource(until);
        using var moved = new CancellationTokenSource();
        long bytes = 0;
        var watching = relay is null || relayedTo is not null ? Task.CompletedTask : WatchElsewhereAsync(identity, () => Interlocked.Read(ref bytes) == 0, moved, ended.Token);
        void OnChanged(TargetUpload upload)
        {
            if (upload.Target == identity && upload.Phase is UploadPhase.Failed)
            {
                live.Complete(identity);
            }
        }

        registry.Changed += OnChanged;
        try
        {
            if (registry.Current(identity) is { Phase: UploadPhase.Failed })
            {
                live.Complete(identity);
            }

            if (relayedTo is null)
            {
                logger.LogInformation("follow of {Namespace}/{Capture} pod {Pod} by {User}: following this replica's ingest", identity.Namespace, identity.CaptureName, identity.Pod, user);
            }

            if (!context.Response.HasStarted)
            {
                context.Response.ContentType = ExtensionApi.PcapContentType;
                context.Response.Headers.CacheControl = "no-store";
                await context.Response.StartAsync(cancellationToken);
                await context.Response.Body.FlushAsync(cancellationToken); // the headers go now: the follower (or the relaying replica) knows it is answered before a packet arrives
            }

            using var waiting = CancellationTokenSource.CreateLinkedTokenSource(ended.Token, moved.Token);
            // A follower cut off for falling behind gets its last whole records, if it takes them within the grace; else its request ends.
            using var stalled = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var grace = followLimits.Value.CutGrace;
            _ = subscription.Cut.ContinueWith(_ => StallAfter(stalled, grace), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            try
            {
                while (await subscription.WaitToReadAsync(waiting.Token))
                {
                    while (subscription.TryRead(out var chunk))
                    {
                        await context.Response.Body.WriteAsync(chunk, stalled.Token);
                        Interlocked.Add(ref bytes, chunk.Length);
                    }

                    await context.Response.Body.FlushAsync(stalled.Token);
                }

                logger.LogInformation("follow of {Namespace}/{Capture} pod {Pod} by {User} ended with the capture ({Bytes} bytes)", identity.Namespace, identity.CaptureName, identity.Pod, user, bytes);
            }
            catch (FollowerTooSlowException e)
            {
                logger.LogWarning("follow of {Namespace}/{Capture} pod {Pod} by {User} was cut off after {Bytes} bytes: {Error}", identity.Namespace, identity.CaptureName, identity.Pod, user, bytes, e.Message);
                await RecordCutAsync(capture, identity, user, bytes, e.Message);
            }
            catch (OperationCanceledException) when (lifetime.ApplicationStopping.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                logger.LogInformation("follow of {Namespace}/{Capture} pod {Pod} by {User} after {Bytes} bytes: {Why}", identity.Namespace, identity.CaptureName, identity.Pod, user, bytes, ShuttingDown);
                context.Abort();
            }
            catch (OperationCanceledException) when (moved.IsCancellationRequested && !ended.IsCancellationRequested && Interlocked.Read(ref bytes) > 0)
            {
                // A record arrived here just as another replica took the stream: this stream cannot go on from there.
                logger.LogInformation("follow of {Namespace}/{Capture} pod {Pod} by {User} after {Bytes} bytes: another replica took the stream; broken off at the last whole record, kubectl capture follow follows again", identity.Namespace, identity.CaptureName, identity.Pod, user, bytes);
                context.Abort();
            }
            catch (OperationCanceledException) when (moved.IsCancellationRequested && !ended.IsCancellationRequested)
            {
                logger.LogInformation("follow of {Namespace}/{Capture} pod {Pod} by {User}: another replica took the stream before a byte arrived here; relaying it from there", identity.Namespace, identity.CaptureName, identity.Pod, user);
                return true;
            }
            catch (LiveFeedUnavailableException e)
            {
                logger.LogWarning("follow of {Namespace}/{Capture} pod {Pod} by {User} ended after {Bytes} bytes: {Error}", identity.Namespace, identity.CaptureName, identity.Pod, user, bytes, e.Message);
            }
            catch (OperationCanceledException) when (stalled.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                logger.LogWarning("follow of {Namespace}/{Capture} pod {Pod} by {User} was cut off after {Bytes} bytes and did not read its last records within {Grace}: the request is ended", identity.Namespace, identity.CaptureName, identity.Pod, user, bytes, followLimits.Value.FollowCutGrace);
                await RecordCutAsync(capture, identity, user, bytes, new FollowerTooSlowException().Message);
                context.Abort();
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                logger.LogWarning("follow of {Namespace}/{Capture} pod {Pod} by {User} ended after {Bytes} bytes: the capture ran past its duration and grace without ending", identity.Namespace, identity.CaptureName, identity.Pod, user, bytes);
            }
            catch (Exception e) when (cancellationToken.IsCancellationRequested && e is OperationCanceledException or IOException)
            {
                // kube-apiserver ends a request to an extension API after its --request-timeout (1 minute by
                // default), and a reader may close its end: either way the follower has gone; the capture goes on.
                logger.LogInformation("follow of {Namespace}/{Capture} pod {Pod} by {User} ended after {Bytes} bytes: the follower went away", identity.Namespace, identity.CaptureName, identity.Pod, user, bytes);
            }
        }
        finally
        {
            registry.Changed -= OnChanged;
            await ended.CancelAsync();
            await watching;
        }

        return false;
    }

    /// <summary>
    /// Every <see cref="StreamRelay.PollPeriod"/> while nothing was passed on: cancels <paramref name="moved"/> once
    /// another replica holds the stream. The followers of one target waiting here share one Lease read per period.
    /// </summary>
    private async Task WatchElsewhereAsync(CaptureIdentity identity, Func<bool> nothingSent, CancellationTokenSource moved, CancellationToken cancellationToken)
    {
        try
        {
            while (nothingSent())
            {
                await Task.Delay(StreamRelay.PollPeriod, cancellationToken);
                if (nothingSent() && await relay!.ElsewhereAsync(identity, cancellationToken, StreamRelay.PollPeriod) is not null)
                {
                    await moved.CancelAsync();
                    return;
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or HttpOperationException or HttpRequestException)
        {
            // the follow ended, or the API did not answer: it is asked again by the next follow
        }
    }

    /// <summary>
    /// The user's address as kube-apiserver saw it: the last entry of <c>X-Forwarded-For</c>, the one
    /// kube-apiserver's proxy appends (only a verified front proxy's request gets here). What came
    /// before it was sent by the client and proves nothing: never logged as the peer.
    /// </summary>
    public static string ClientAddress(HttpContext context) =>
        context.Request.Headers["X-Forwarded-For"].SelectMany(v => (v ?? "").Split(',')).Select(a => a.Trim()).LastOrDefault(a => a.Length > 0)
        ?? context.Connection.RemoteIpAddress?.ToString() ?? "unknown";

    /// <summary>Ends the writes of a cut-off follower after <paramref name="grace"/> (not when its follow has ended meanwhile).</summary>
    private static void StallAfter(CancellationTokenSource stalled, TimeSpan grace)
    {
        try
        {
            stalled.CancelAfter(grace);
        }
        catch (ObjectDisposedException)
        {
            // the follow ended before it was cut off
        }
    }

    /// <summary>A Warning Event on the capture: the follower, and why it was cut off.</summary>
    private Task RecordCutAsync(PacketCapture capture, CaptureIdentity identity, RemoteUser user, long bytes, string why)
    {
        Metrics.OperatorMetrics.FollowCutoffs.Add(1);
        return events.OnCaptureAsync(capture, "Warning", "FollowerCutOff", $"{user}'s live follow of pod {identity.Pod} was cut off after {bytes} bytes: {why}", CancellationToken.None);
    }

    private TimeSpan FollowLimit(PacketCapture capture)
    {
        var grace = Quantities.TryParseDuration(options.Value.FollowGrace, out var g, out _) ? g : TimeSpan.FromMinutes(2);
        var duration = Quantities.TryParseDuration(capture.Spec.Duration, out var d, out _) ? d : TimeSpan.FromHours(1);
        var started = capture.Status?.StartTime is { } s ? new DateTimeOffset(DateTime.SpecifyKind(s, DateTimeKind.Utc)) : time.GetUtcNow();
        var left = started + duration + grace - time.GetUtcNow();
        return left > TimeSpan.FromSeconds(1) ? left : TimeSpan.FromSeconds(1) + grace;
    }

    private async Task StorageUnreachableAsync(HttpContext context, string name, Exception e)
    {
        logger.LogError("object storage unreachable while serving {Capture}: {Error}", name, e.Message);
        await SubresourcesApi.WriteStatusAsync(context, 503, "ServiceUnavailable", $"object storage is unreachable: {e.Message}", name);
    }

    private Task RecordAsync(PacketCapture capture, string reason, string message, CancellationToken cancellationToken) =>
        events.OnCaptureAsync(capture, "Normal", reason, message, cancellationToken);
}
