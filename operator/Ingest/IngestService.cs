using System.Text.Json;
using System.Text.RegularExpressions;
using System.Threading.Channels;
using Grpc.Core;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Capture;
using KubeCapture.Contracts.Recorder;
using KubeCapture.Contracts.Summary;
using KubeCapture.Operator.Custody;
using KubeCapture.Operator.Metrics;
using KubeCapture.Operator.Provenance;
using KubeCapture.Operator.Storage;
using KubeCapture.Operator.Tracing;
using KubeCapture.Proto.V1;
using Microsoft.Extensions.Options;

namespace KubeCapture.Operator.Ingest;

/// <summary>
/// The gRPC ingest: receives one target's pcap from its agent and stores it (see
/// proto/kubecapture/v1/ingest.proto for the conversation). Checks the per-target token, resumes
/// from the durable checkpoint, acknowledges only what is durably stored, verifies the SHA-256, and
/// publishes the pcap and its manifest only when it is whole.
/// </summary>
public sealed partial class IngestService(
    IArtifactStore store,
    UploadRegistry registry,
    CaptureTokenIssuer tokens,
    AgentAddressBook addresses,
    LiveRecordFeed live,
    CustodyLedger custody,
    ManifestSigner signer,
    IOptions<StorageOptions> storageOptions,
    IHostApplicationLifetime lifetime,
    ILogger<IngestService> logger,
    UploadOwnership? ownership = null,
    TargetBindingLookup? bindings = null) : KubeCapture.Proto.V1.Ingest.IngestBase
{
    /// <summary>What an agent streaming while the operator stops is told (it resumes from its last acknowledged byte).</summary>
    public const string ShuttingDown = "the operator is shutting down (a rollout, an upgrade or a drain); resume from the last acknowledged byte with the next operator";

    private readonly StorageOptions _storage = storageOptions.Value;

    public override async Task Upload(IAsyncStreamReader<AgentMessage> requestStream, IServerStreamWriter<IngestMessage> responseStream, ServerCallContext context)
    {
        if (!await requestStream.MoveNext(context.CancellationToken) || requestStream.Current.BodyCase != AgentMessage.BodyOneofCase.Open)
        {
            throw Fail(StatusCode.InvalidArgument, "the first message of an upload must be Open");
        }

        var open = requestStream.Current.Open;
        // The target (its pod) is what the token, the binding and the custody are for; a snapshot of its recording is an upload of its own.
        var pod = Validate(open);
        var target = open.SnapshotIndex > 0 ? pod with { Snapshot = open.SnapshotIndex } : pod;
        // The trace the agent was given when its container was added (its metadata), continued here; the storage writes are its children.
        using var span = CaptureTracing.StartIngest(context.RequestHeaders.GetValue(CaptureTracing.ParentHeader), target.Namespace, target.CaptureName, target.Pod);
        if (!tokens.HasKey)
        {
            throw Fail(StatusCode.Unavailable, "the operator has not read its upload token key yet (Ingest:TokenKeySecret); retry");
        }

        if (!tokens.Verify(pod, open.Token))
        {
            logger.LogWarning("rejected an upload for {Namespace}/{Capture} pod {Pod} from {Peer}: wrong token", target.Namespace, target.CaptureName, target.Pod, context.Peer);
            throw Fail(StatusCode.Unauthenticated, $"the token is not valid for capture {target.Namespace}/{target.CaptureName} (uid {target.CaptureUid}) pod {target.Pod}");
        }

        // Before anything can take over: a stream not from the target's pod, or for a target that has ended, never touches its upload.
        var peer = PeerAddress(context);
        if (bindings is not null)
        {
            // Every replica ingests, and only the leader reconciles: the binding is read from the API at each Open.
            await bindings.RefreshAsync(pod, context.CancellationToken);
        }

        switch (addresses.Check(pod, peer))
        {
            case (PeerVerdict.Unknown, var unknown):
                logger.LogInformation("{Namespace}/{Capture} pod {Pod}: an upload from {Peer} waits for the pod's addresses: {Reason}", target.Namespace, target.CaptureName, target.Pod, peer, unknown);
                throw Fail(StatusCode.Unavailable, unknown!);
            case (PeerVerdict.Refused, var refused):
                logger.LogWarning("refused an upload for {Namespace}/{Capture} (uid {Uid}) pod {Pod} from {Peer}: {Refusal}",
                    target.Namespace, target.CaptureName, target.CaptureUid, target.Pod, peer, refused);
                addresses.Refuse(pod, refused!);
                throw Fail(StatusCode.PermissionDenied, refused!);
        }

        if (target.Snapshot > 0 && addresses.Terms(pod) is { } recording && (recording.MaxSnapshots ?? 0) < target.Snapshot)
        {
            throw Fail(StatusCode.InvalidArgument, recording.MaxSnapshots is null
                ? $"Open.snapshot_index {target.Snapshot}: capture {pod.Namespace}/{pod.CaptureName} is not a flight recording (no spec.recorder): it takes no snapshots"
                : $"Open.snapshot_index {target.Snapshot}: capture {pod.Namespace}/{pod.CaptureName} takes at most {recording.MaxSnapshots} snapshots (spec.recorder.maxSnapshots)");
        }

        if (registry.Current(target) is { Phase: UploadPhase.Failed } failed)
        {
            throw Fail(StatusCode.FailedPrecondition, $"this capture target's upload already failed: {failed.Error}");
        }

        // A stopping operator ends its streams at once, rather than holding its shutdown (and a Deployment
        // rollout) until the host's shutdown timeout: what is durable was acknowledged, the agent keeps the rest.
        using var streamCancellation = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, lifetime.ApplicationStopping);
        var outbox = new Outbox(responseStream, streamCancellation.Token);
        var owner = new StreamOwner(AgentSessionRecord.Of(open.SessionId, peer is null ? null : AgentAddressBook.Normalize(peer).ToString(), DateTimeOffset.UtcNow), outbox, streamCancellation);
        OperatorMetrics.ActiveStreams.Add(1);
        try
        {
            using var lease = await registry.AcquireAsync(target, owner, ct => DurableHolderAsync(target, ct), streamCancellation.Token);
            await using var claim = ownership is null ? null : await ownership.ClaimAsync(target, owner, streamCancellation.Token);
            await ReceiveAsync(target, open, owner.Session, requestStream, outbox, claim, streamCancellation.Token);
        }
        catch (UploadOwnedElsewhereException elsewhere)
        {
            logger.LogInformation("{Namespace}/{Capture} pod {Pod}: an upload from {Peer} waits: {Reason}", target.Namespace, target.CaptureName, target.Pod, peer, elsewhere.Message);
            throw Fail(StatusCode.Unavailable, elsewhere.Message);
        }
        catch (UploadHeldException held)
        {
            logger.LogWarning("{Namespace}/{Capture} pod {Pod}: refused a second agent session ({Session}): {Holder} holds the upload",
                target.Namespace, target.CaptureName, target.Pod, owner.Session, held.Holder);
            addresses.Refuse(pod, held.Message, session: true);
            throw Fail(StatusCode.AlreadyExists, held.Message);
        }
        catch (OperationCanceledException) when (owner.Superseded)
        {
            throw Fail(StatusCode.Aborted, "a newer stream of the same agent session took over");
        }
        catch (OperationCanceledException) when (owner.LostBecause is { } lost)
        {
            throw Fail(StatusCode.Unavailable, lost);
        }
        catch (OperationCanceledException) when (lifetime.ApplicationStopping.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested)
        {
            logger.LogInformation("{Namespace}/{Capture} pod {Pod}: the operator is stopping; the agent resumes with the next one", target.Namespace, target.CaptureName, target.Pod);
            throw Fail(StatusCode.Unavailable, ShuttingDown);
        }
        catch (StorageUnavailableException e)
        {
            // A refusal (S3 4xx) is final: the agent is told so (FailedPrecondition) and stops at once.
            var aborted = await TryAbortAsync(target);
            var error = e.Refused
                ? $"object storage refused the upload: {e.Message}; {(aborted ? "the incomplete upload was aborted and nothing was published" : "the incomplete upload was not published")}"
                : $"object storage is unavailable: {e.Message}; the incomplete upload was not published";
            logger.LogError("{Namespace}/{Capture} pod {Pod}: {Error}", target.Namespace, target.CaptureName, target.Pod, error);
            registry.Update(target, u => u with { Phase = UploadPhase.Failed, Error = error, UpdatedAt = DateTimeOffset.UtcNow });
            OperatorMetrics.Uploads.Add(1, new KeyValuePair<string, object?>("outcome", "failed"));
            CompleteLive(target);
            throw Fail(e.Refused ? StatusCode.FailedPrecondition : StatusCode.Unavailable, error);
        }
        finally
        {
            OperatorMetrics.ActiveStreams.Add(-1);
            await outbox.CompleteAsync();
        }
    }

    /// <summary>
    /// The agent session storage says holds the target's upload (its stored manifest's, else its
    /// checkpoint's), read the first time this process sees the target: after a restart or on a new
    /// leader, the holder is the same as before.
    /// </summary>
    private async Task<AgentSessionRecord?> DurableHolderAsync(CaptureIdentity target, CancellationToken cancellationToken)
    {
        var budget = _storage.RetryBudget;
        var stored = await StorageRetry.RunAsync("reading the stored manifest", budget, ct => store.FindStoredAsync(target, ct), logger, cancellationToken);
        if (stored is not null && stored.CaptureUid == target.CaptureUid)
        {
            return stored.AgentSession;
        }

        var checkpoint = await StorageRetry.RunAsync("reading the upload checkpoint", budget, ct => store.LoadCheckpointAsync(target, ct), logger, cancellationToken);
        return checkpoint is not null && checkpoint.Target == target ? checkpoint.Holder : null;
    }

    private async Task ReceiveAsync(CaptureIdentity target, Open open, AgentSessionRecord session, IAsyncStreamReader<AgentMessage> requests, Outbox outbox, UploadClaim? claim, CancellationToken cancellationToken)
    {
        var budget = _storage.RetryBudget;
        var stored = await StorageRetry.RunAsync("reading the stored manifest", budget, ct => store.FindStoredAsync(target, ct), logger, cancellationToken);
        if (stored is not null)
        {
            await ConfirmStoredAsync(target, stored, requests, outbox, cancellationToken);
            return;
        }

        var checkpoint = await StorageRetry.RunAsync("reading the upload checkpoint", budget, ct => store.LoadCheckpointAsync(target, ct), logger, cancellationToken);
        if (checkpoint is not null && checkpoint.Target != target)
        {
            // An earlier capture of the same name left its upload behind: its bytes are not this capture's.
            logger.LogWarning("{Namespace}/{Capture} pod {Pod}: the upload left by an earlier capture of the same name (uid {Uid}, {Bytes} bytes) is aborted", target.Namespace, target.CaptureName, target.Pod, checkpoint.Target.CaptureUid, checkpoint.Offset);
            var abandoned = checkpoint;
            await StorageRetry.RunAsync("aborting the earlier upload", budget, ct => store.AbortUploadAsync(abandoned, ct), logger, cancellationToken);
            checkpoint = null;
        }

        var terms = addresses.Terms(target.Target);
        if (checkpoint is null)
        {
            // The capture's own retention as the reconciler resolved it; the agent's claim only where no reconciler tells (a standalone ingest).
            var now = DateTimeOffset.UtcNow;
            var ttl = terms is not null ? terms.Retention ?? _storage.DefaultRetention
                : open.RetentionTtlSeconds > 0 ? TimeSpan.FromSeconds(open.RetentionTtlSeconds) : _storage.DefaultRetention;
            if (terms is not null && open.RetentionTtlSeconds > 0 && TimeSpan.FromSeconds(open.RetentionTtlSeconds) != ttl)
            {
                logger.LogWarning("{Namespace}/{Capture} pod {Pod}: the agent asked to keep the pcap {Asked}, the capture's retention is {Ttl}: it is kept {Ttl}",
                    target.Namespace, target.CaptureName, target.Pod, TimeSpan.FromSeconds(open.RetentionTtlSeconds), ttl, ttl);
            }

            var expiresAt = ttl > TimeSpan.Zero ? now + ttl : (DateTimeOffset?)null;
            var uploadId = await StorageRetry.RunAsync("starting the upload", budget, ct => store.BeginUploadAsync(target, expiresAt, ct), logger, cancellationToken);
            checkpoint = new UploadCheckpoint
            {
                Target = target,
                Session = session,
                UploadId = uploadId,
                Offset = 0,
                Parts = [],
                Sha256State = new ResumableSha256().ExportState(),
                ExpiresAt = expiresAt,
                MaxBytes = terms?.MaxBytes,
                Custody = custody.Of(target.Target),
                StartedAt = now,
                UpdatedAt = now,
            };
            await PartPipeline.SaveCheckpointAsync(store, checkpoint, budget, logger); // not cancelled with the stream, as the later saves
        }

        // spec.maxBytes bounds a capture's pcap (and a recording's own, which holds no packet); a snapshot
        // holds at most the ring's size before its trigger and as much again after it.
        var maxBytes = target.Snapshot > 0 ? terms?.SnapshotMaxBytes : checkpoint.MaxBytes ?? terms?.MaxBytes;
        await using var pipeline = new PartPipeline(store, checkpoint, _storage.PartSize, _storage.PartsInFlight, budget, logger, offset =>
        {
            outbox.Post(new IngestMessage { Ack = new Ack { DurableOffset = offset } });
            registry.Update(target, u => u with { UpdatedAt = DateTimeOffset.UtcNow });
        }, cancellationToken);
        outbox.Post(new IngestMessage { Accepted = new Accepted { ResumeOffset = checkpoint.Offset, PartSize = _storage.PartSize } });
        var resumeOffset = checkpoint.Offset;
        registry.Update(target, u => u with { Phase = UploadPhase.Streaming, Bytes = Math.Max(u.Bytes, resumeOffset), Error = null, UpdatedAt = DateTimeOffset.UtcNow });
        logger.LogInformation("{Namespace}/{Capture} pod {Pod}: agent connected ({Session}), resuming at byte {Offset}", target.Namespace, target.CaptureName, target.Pod, session, resumeOffset);
        if (registry.StopRequested(target.CaptureUid) is { } reason)
        {
            outbox.Post(new IngestMessage { Stop = new Stop { Reason = reason } });
        }

        try
        {
            while (await requests.MoveNext(cancellationToken))
            {
                var message = requests.Current;
                switch (message.BodyCase)
                {
                    case AgentMessage.BodyOneofCase.Chunk:
                        if (message.Chunk.Offset != pipeline.Received)
                        {
                            throw Fail(StatusCode.InvalidArgument, $"a chunk starts at byte {message.Chunk.Offset}, but the next byte expected is {pipeline.Received}");
                        }

                        if (maxBytes is { } limit && pipeline.Received + message.Chunk.Data.Length > limit)
                        {
                            var ceiling = target.Snapshot > 0
                                ? $"the most a snapshot may hold, {limit} bytes (twice the recording's ring, spec.recorder.maxBytes, plus the pcap header)"
                                : $"the capture's maxBytes of {limit} bytes";
                            logger.LogWarning("{Namespace}/{Capture} pod {Pod}: refused bytes past {Ceiling} from {Session}", target.Namespace, target.CaptureName, target.Pod, ceiling, session);
                            throw Fail(StatusCode.InvalidArgument,
                                $"the pcap would grow to {pipeline.Received + message.Chunk.Data.Length} bytes, past {ceiling}: the ingest stores no byte beyond it, whatever the agent was told");
                        }

                        if (claim is { Writable: false })
                        {
                            await claim.WhenWritableAsync(cancellationToken); // the Lease is not known to be this replica's: nothing is written
                        }

                        await pipeline.AppendAsync(message.Chunk.Data.Memory);
                        OperatorMetrics.IngestedBytes.Add(message.Chunk.Data.Length);
                        if (target.Snapshot == 0)
                        {
                            live.Append(target, message.Chunk.Offset, message.Chunk.Data.Memory);
                        }

                        break;
                    case AgentMessage.BodyOneofCase.Progress:
                        var progress = message.Progress;
                        var summary = SummarySoFar(target, progress.SummaryJson);
                        var recorderState = progress.Recorder is { } recorder ? RecorderStateOf(recorder, progress.DroppedByKernel) : null;
                        claim?.Report(progress.Packets, progress.Bytes, progress.DroppedByKernel, recorderState);
                        registry.Update(target, u => u with
                        {
                            Packets = progress.Packets,
                            Bytes = progress.Bytes,
                            DroppedByKernel = progress.DroppedByKernel,
                            SummarySoFar = summary ?? u.SummarySoFar,
                            Recorder = recorderState ?? u.Recorder,
                            UpdatedAt = DateTimeOffset.UtcNow,
                        });
                        break;
                    case AgentMessage.BodyOneofCase.Finish:
                        if (claim is not null)
                        {
                            await claim.WhenWritableAsync(cancellationToken);
                        }

                        await FinishAsync(target, message.Finish, pipeline, outbox, cancellationToken);
                        return;
                    default:
                        throw Fail(StatusCode.InvalidArgument, $"unexpected {message.BodyCase} message after Open");
                }
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException)
        {
            logger.LogWarning("{Namespace}/{Capture} pod {Pod}: the stream broke after {Bytes} bytes ({Durable} durable): {Error}", target.Namespace, target.CaptureName, target.Pod, pipeline.Received, pipeline.Checkpoint.Offset, e.Message);
            if (outbox.Superseded || outbox.LostBecause is not null || lifetime.ApplicationStopping.IsCancellationRequested)
            {
                throw;
            }

            return;
        }

        logger.LogWarning("{Namespace}/{Capture} pod {Pod}: the agent closed the stream after {Bytes} bytes without finishing", target.Namespace, target.CaptureName, target.Pod, pipeline.Received);
    }

    private async Task FinishAsync(CaptureIdentity target, Finish finish, PartPipeline pipeline, Outbox outbox, CancellationToken cancellationToken)
    {
        if (finish.TotalBytes != pipeline.Received)
        {
            throw Fail(StatusCode.InvalidArgument, $"Finish says the pcap has {finish.TotalBytes} bytes, but {pipeline.Received} were sent");
        }

        CaptureManifest? agentManifest = null;
        SnapshotManifest? snapshotManifest = null;
        if (finish.ManifestJson.Length > 0)
        {
            try
            {
                if (target.Snapshot > 0)
                {
                    snapshotManifest = SnapshotManifest.FromJson(finish.ManifestJson);
                }
                else
                {
                    agentManifest = CaptureManifest.FromJson(finish.ManifestJson);
                }
            }
            catch (JsonException e)
            {
                throw Fail(StatusCode.InvalidArgument, $"the agent's manifest is not valid JSON: {e.Message}");
            }
        }

        if (target.Snapshot > 0 && snapshotManifest?.Snapshot != target.Snapshot)
        {
            throw Fail(StatusCode.InvalidArgument, $"the Finish of snapshot {target.Snapshot} must carry its snapshot manifest (the trigger, the window): {(snapshotManifest is null ? "it has none" : $"it is snapshot {snapshotManifest.Snapshot}'s")}");
        }

        var sha256 = await pipeline.DrainAsync();
        var checkpoint = pipeline.Checkpoint;
        if (!string.Equals(sha256, finish.Sha256, StringComparison.OrdinalIgnoreCase))
        {
            var error = $"SHA-256 mismatch: the agent computed {finish.Sha256}, the {pipeline.Received} bytes the ingest received hash to {sha256}; the upload was aborted and nothing was published";
            logger.LogError("{Namespace}/{Capture} pod {Pod}: {Error}", target.Namespace, target.CaptureName, target.Pod, error);
            await StorageRetry.RunAsync("aborting the upload", _storage.RetryBudget, ct => store.AbortUploadAsync(checkpoint, ct), logger, cancellationToken);
            registry.Update(target, u => u with { Phase = UploadPhase.Failed, Error = error, Manifest = agentManifest, UpdatedAt = DateTimeOffset.UtcNow });
            OperatorMetrics.Uploads.Add(1, new KeyValuePair<string, object?>("outcome", "failed"));
            CompleteLive(target);
            throw Fail(StatusCode.DataLoss, error);
        }

        ManifestSeal seal;
        try
        {
            seal = await signer.SealAsync(cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Nothing is published unsigned: the checkpoint stays, and the agent finishes again when it retries.
            logger.LogError("{Namespace}/{Capture} pod {Pod}: cannot load the manifest-signing key: {Error}", target.Namespace, target.CaptureName, target.Pod, e.Message);
            throw Fail(StatusCode.Unavailable, $"the operator cannot sign the manifest yet (its signing key: {e.Message}); retry");
        }

        // What the reconciler told; from the checkpoint when the PacketCapture is gone meanwhile (or this process never reconciled it).
        var witnessed = custody.Of(target.Target) ?? checkpoint.Custody;
        var uri = store.UriOf(target);
        var stored = new StoredCaptureManifest
        {
            CaptureUid = target.CaptureUid,
            Namespace = target.Namespace,
            CaptureName = target.CaptureName,
            Pod = target.Pod,
            Uri = uri,
            Size = pipeline.Received,
            Sha256 = sha256,
            StoredAt = DateTimeOffset.UtcNow,
            ExpiresAt = checkpoint.ExpiresAt,
            Agent = agentManifest,
            SnapshotIndex = target.Snapshot > 0 ? target.Snapshot : null,
            Snapshot = snapshotManifest is null ? null : snapshotManifest with { File = uri },
            AgentSha256 = finish.Sha256.ToLowerInvariant(),
            Requester = witnessed?.Requester,
            Reason = witnessed?.Reason,
            Spec = witnessed?.Spec,
            TargetPod = witnessed?.Pod,
            AgentImage = witnessed?.AgentImage,
            Retention = new RetentionRecord
            {
                Lock = witnessed?.Lock ?? "none",
                RetainUntil = witnessed?.Lock is "governance" or "compliance" ? checkpoint.ExpiresAt : null,
                LegalHold = witnessed?.LegalHold ?? false,
            },
            AgentSession = checkpoint.Holder,
            Contested = registry.Contested(target),
        };
        stored = await StorageRetry.RunAsync("publishing the pcap", _storage.RetryBudget, ct => store.CompleteUploadAsync(checkpoint, stored, seal, ct), logger, cancellationToken);
        try
        {
            await StorageRetry.RunAsync("removing the upload checkpoint", _storage.RetryBudget, ct => store.RemoveCheckpointAsync(target, ct), logger, cancellationToken);
        }
        catch (StorageUnavailableException e)
        {
            // Published: the pcap and its manifest are stored, and that is what the capture reports.
            logger.LogWarning("{Namespace}/{Capture} pod {Pod}: {Uri} is stored, but its upload checkpoint stays until the retention sweeper removes it: {Error}",
                target.Namespace, target.CaptureName, target.Pod, stored.Uri, e.Message);
        }

        registry.Publish(UploadRegistry.FromStored(stored));
        OperatorMetrics.Uploads.Add(1, new KeyValuePair<string, object?>("outcome", "stored"));
        OperatorMetrics.IngestedPackets.Add(agentManifest?.PacketsWritten ?? 0);
        OperatorMetrics.KernelDrops.Add(agentManifest?.PacketsDroppedByKernel ?? 0);
        CompleteLive(target);
        logger.LogInformation("{Namespace}/{Capture} pod {Pod}: stored {Uri} ({Size} bytes, sha256 {Sha256})", target.Namespace, target.CaptureName, target.Pod, stored.Uri, stored.Size, stored.Sha256);
        outbox.Post(StoredMessage(stored));
    }

    /// <summary>The agent reconnected after its pcap was published (it missed Stored): confirm it.</summary>
    private async Task ConfirmStoredAsync(CaptureIdentity target, StoredCaptureManifest stored, IAsyncStreamReader<AgentMessage> requests, Outbox outbox, CancellationToken cancellationToken)
    {
        if (stored.CaptureUid != target.CaptureUid)
        {
            throw Fail(StatusCode.FailedPrecondition, $"{stored.Uri} already holds an earlier capture with the same name (uid {stored.CaptureUid}); it is kept until its retention ends");
        }

        outbox.Post(new IngestMessage { Accepted = new Accepted { ResumeOffset = stored.Size, PartSize = _storage.PartSize } });
        registry.Publish(UploadRegistry.FromStored(stored));
        while (await requests.MoveNext(cancellationToken))
        {
            if (requests.Current.BodyCase == AgentMessage.BodyOneofCase.Finish)
            {
                var finish = requests.Current.Finish;
                if (finish.TotalBytes != stored.Size || !string.Equals(finish.Sha256, stored.Sha256, StringComparison.OrdinalIgnoreCase))
                {
                    throw Fail(StatusCode.FailedPrecondition, $"{stored.Uri} is already stored with {stored.Size} bytes and SHA-256 {stored.Sha256}, not {finish.TotalBytes} bytes with {finish.Sha256}");
                }

                outbox.Post(StoredMessage(stored));
                return;
            }
        }
    }

    /// <summary>A live follow reads the target's own pcap: a snapshot's upload is not followed.</summary>
    private void CompleteLive(CaptureIdentity target)
    {
        if (target.Snapshot == 0)
        {
            live.Complete(target);
        }
    }

    private static KubeCapture.Contracts.Resources.RecorderStatus RecorderStateOf(RecorderProgress recorder, long droppedByKernel) => new()
    {
        Armed = recorder.Armed,
        RingBytes = recorder.RingBytes,
        RingCapacity = recorder.RingCapacity,
        PacketsSeen = recorder.PacketsSeen,
        DroppedByKernel = droppedByKernel,
        SnapshotsTaken = recorder.SnapshotsTaken,
        TriggersNotTaken = recorder.TriggersNotTaken,
        LastTrigger = recorder.LastTrigger.Length > 0 ? recorder.LastTrigger : null,
    };

    /// <summary>Aborts the target's upload once, without retrying; false when storage did not answer (the retention sweeper retries).</summary>
    private async Task<bool> TryAbortAsync(CaptureIdentity target)
    {
        try
        {
            if (await store.LoadCheckpointAsync(target, CancellationToken.None) is { } checkpoint)
            {
                await store.AbortUploadAsync(checkpoint, CancellationToken.None);
            }

            return true;
        }
        catch (Exception e)
        {
            logger.LogWarning("could not abort the upload of {Namespace}/{Capture} pod {Pod} ({Error}); the retention sweeper retries", target.Namespace, target.CaptureName, target.Pod, e.Message);
            return false;
        }
    }

    private static IngestMessage StoredMessage(StoredCaptureManifest stored) => new()
    {
        Stored = new Stored
        {
            Uri = stored.Uri,
            Size = stored.Size,
            Sha256 = stored.Sha256,
            ExpiresAt = stored.ExpiresAt?.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture) ?? "",
        },
    };

    private static CaptureIdentity Validate(Open open)
    {
        Check("capture_uid", open.CaptureUid, UidPattern());
        Check("namespace", open.Namespace, NamePattern());
        Check("capture_name", open.CaptureName, NamePattern());
        Check("pod", open.Pod, NamePattern());
        if (string.IsNullOrWhiteSpace(open.SessionId) || open.SessionId.Length is < MinSessionId or > 128)
        {
            throw Fail(StatusCode.InvalidArgument, $"Open.session_id must be {MinSessionId} to 128 characters: a random value only the agent process knows");
        }

        if (open.SnapshotIndex is < 0 or > RecorderLimits.MaxMaxSnapshots)
        {
            throw Fail(StatusCode.InvalidArgument, $"Open.snapshot_index is {open.SnapshotIndex}; use 0 for the target's own upload or 1 to {RecorderLimits.MaxMaxSnapshots} for a snapshot of its recording");
        }

        if (open.RetentionTtlSeconds < 0)
        {
            throw Fail(StatusCode.InvalidArgument, $"Open.retention_ttl_seconds is {open.RetentionTtlSeconds}; use 0 for the default or a positive number");
        }

        return new CaptureIdentity(open.CaptureUid, open.Namespace, open.CaptureName, open.Pod);

        static void Check(string field, string value, Regex pattern)
        {
            if (value.Length is 0 or > 253 || !pattern.IsMatch(value))
            {
                throw Fail(StatusCode.InvalidArgument, $"Open.{field} '{value}' is not a valid Kubernetes name");
            }
        }
    }

    /// <summary>The TCP peer of the stream: the source address the pod's kernel gave its connection.</summary>
    private static System.Net.IPAddress? PeerAddress(ServerCallContext context) => context.GetHttpContext().Connection.RemoteIpAddress;

    private static RpcException Fail(StatusCode code, string message) => new(new Status(code, message));

    /// <summary>The shortest session ID taken: 32 hex digits (128 bits), what agents have always sent.</summary>
    private const int MinSessionId = 32;

    /// <summary>Larger summaries so far are not read (the agent's is bounded far below this).</summary>
    private const int MaxSummaryJson = 512 * 1024;

    /// <summary>The agent's summary so far, or null when it sent none or one that does not parse (logged; the capture goes on).</summary>
    private TcpSummaryReport? SummarySoFar(CaptureIdentity target, string json)
    {
        if (json.Length == 0 || json.Length > MaxSummaryJson)
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize(json, SummaryJsonContext.Default.TcpSummaryReport);
        }
        catch (JsonException e)
        {
            logger.LogWarning("{Namespace}/{Capture} pod {Pod}: the agent's summary so far does not parse: {Error}", target.Namespace, target.CaptureName, target.Pod, e.Message);
            return null;
        }
    }

    [GeneratedRegex("^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")]
    private static partial Regex NamePattern();

    [GeneratedRegex("^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?$")]
    private static partial Regex UidPattern();

    /// <summary>Serializes every message to the agent through one writer (acks come from the part uploads).</summary>
    private sealed class Outbox
    {
        private readonly Channel<IngestMessage> _messages = Channel.CreateUnbounded<IngestMessage>(new UnboundedChannelOptions { SingleReader = true });
        private readonly Task _writer;

        public Outbox(IServerStreamWriter<IngestMessage> stream, CancellationToken cancellationToken)
        {
            _writer = Task.Run(async () =>
            {
                await foreach (var message in _messages.Reader.ReadAllAsync(cancellationToken))
                {
                    await stream.WriteAsync(message, cancellationToken);
                }
            }, CancellationToken.None);
        }

        public bool Superseded { get; set; }

        public string? LostBecause { get; set; }

        public void Post(IngestMessage message) => _messages.Writer.TryWrite(message);

        public async Task CompleteAsync()
        {
            _messages.Writer.TryComplete();
            try
            {
                await _writer;
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or InvalidOperationException)
            {
                // the agent is gone; what is durable is in the checkpoint
            }
        }
    }

    private sealed class StreamOwner(AgentSessionRecord session, Outbox outbox, CancellationTokenSource cancellation) : IStreamOwner
    {
        public AgentSessionRecord Session { get; } = session;

        public bool Superseded => outbox.Superseded;

        public void RequestStop(string reason) => outbox.Post(new IngestMessage { Stop = new Stop { Reason = reason } });

        public void RequestSnapshot(string requester, string? alert = null) =>
            outbox.Post(new IngestMessage { Snapshot = new KubeCapture.Proto.V1.Snapshot { Requester = requester, Alert = alert ?? "" } });

        public string? LostBecause => outbox.LostBecause;

        public void Supersede()
        {
            outbox.Superseded = true;
            cancellation.Cancel();
        }

        public void Lose(string reason)
        {
            outbox.LostBecause = reason;
            cancellation.Cancel();
        }
    }
}
