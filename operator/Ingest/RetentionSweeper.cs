using KubeCapture.Operator.Audit;
using KubeCapture.Operator.Storage;
using Microsoft.Extensions.Options;

namespace KubeCapture.Operator.Ingest;

/// <summary>
/// Enforces retention where the store has no lifecycle rules of its own (s3rver, the local store, a
/// bucket without lifecycle configuration): deletes every stored pcap and manifest whose
/// <c>expiresAt</c> has passed, and aborts uploads abandoned longer than <c>Storage:AbandonAfter</c>
/// that no stream of this process owns and no other replica holds (its upload Lease renewed within that time),
/// and deletes the upload Leases no replica renewed within that time (<see cref="UploadOwnership.DeleteSilentAsync"/>).
/// </summary>
public sealed class RetentionSweeper(IArtifactStore store, UploadRegistry registry, IOptions<StorageOptions> options, ILogger<RetentionSweeper> logger, AuditTrail? audit = null, UploadOwnership? ownership = null) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.SweepInterval);
        do
        {
            try
            {
                await SweepAsync(DateTimeOffset.UtcNow, stoppingToken);
            }
            catch (Exception e) when (!stoppingToken.IsCancellationRequested)
            {
                // Storage down or slow (an HttpClient timeout is an OperationCanceledException too): try again next time.
                logger.LogWarning("retention sweep failed, retrying in {Interval}: {Error}", options.Value.SweepInterval, e.Message);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    /// <summary>One pass; returns how many captures and abandoned uploads it removed.</summary>
    public async Task<(int Expired, int Abandoned)> SweepAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        var expired = 0;
        await foreach (var stored in store.ListStoredAsync(cancellationToken))
        {
            if (stored.ExpiresAt is { } expiresAt && expiresAt <= now)
            {
                if (stored.Retention?.LegalHold == true)
                {
                    continue; // kept until the hold is removed in the bucket; then the next sweep deletes it
                }

                try
                {
                    await store.DeleteStoredAsync(stored, cancellationToken);
                }
                catch (S3ErrorException e) when (e.Code == "AccessDenied")
                {
                    logger.LogWarning("retention: {Uri} expired at {ExpiresAt:O} but the storage refuses to delete it yet ({Error}); retrying next sweep", stored.Uri, expiresAt, e.Message);
                    continue;
                }

                expired++;
                logger.LogInformation("retention: deleted {Uri} (expired at {ExpiresAt:O})", stored.Uri, expiresAt);
                if (audit is not null)
                {
                    await audit.RecordExpiredAsync(stored, cancellationToken);
                }

            }
        }

        var abandoned = 0;
        var abandonAfter = options.Value.AbandonAfter;
        await foreach (var checkpoint in store.ListCheckpointsAsync(cancellationToken))
        {
            if (checkpoint.UpdatedAt + abandonAfter <= now && !await registry.IsActiveAnywhereAsync(checkpoint.Target, now, abandonAfter, cancellationToken))
            {
                await store.AbortUploadAsync(checkpoint, cancellationToken);
                abandoned++;
                logger.LogInformation("retention: aborted the abandoned upload of {Namespace}/{Capture} pod {Pod} ({Bytes} bytes, last progress {UpdatedAt:O})",
                    checkpoint.Target.Namespace, checkpoint.Target.CaptureName, checkpoint.Target.Pod, checkpoint.Offset, checkpoint.UpdatedAt);
            }
        }

        if (ownership is not null)
        {
            // A replica that died holding a stream whose agent never came back leaves its Lease behind.
            await ownership.DeleteSilentAsync(now, abandonAfter, cancellationToken);
        }

        return (expired, abandoned);
    }
}
