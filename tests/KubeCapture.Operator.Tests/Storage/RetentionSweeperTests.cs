using KubeCapture.Contracts;
using KubeCapture.Operator.Audit;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace KubeCapture.Operator.Tests.Storage;

/// <summary>Retention without lifecycle rules: the sweeper lists and deletes (against S3 servers: IngestStorageTests).</summary>
public sealed class RetentionSweeperTests
{
    [Fact]
    public async Task ExpiredCapturesAreDeletedFromTheLocalStoreAndUnexpiredOnesKept()
    {
        var root = Directory.CreateTempSubdirectory("kcI-retention-").FullName;
        await SweepAndCheckAsync(new LocalArtifactStore(root, "captures"), key => Task.FromResult(File.Exists(Path.Combine(root, key))));
    }

    /// <summary>Stores three captures (expired, fresh, kept forever) and an abandoned upload, sweeps once, and checks what is left.</summary>
    internal static async Task SweepAndCheckAsync(IArtifactStore store, Func<string, Task<bool>> exists)
    {
        var now = DateTimeOffset.UtcNow;
        var expired = new CaptureIdentity("uid-old", "default", "old", "web-0");
        var fresh = new CaptureIdentity("uid-new", "default", "new", "web-0");
        var kept = new CaptureIdentity("uid-kept", "default", "kept", "web-0");
        var abandoned = new CaptureIdentity("uid-abandoned", "default", "abandoned", "web-0");
        await StoreAsync(store, expired, now.AddMinutes(-1));
        await StoreAsync(store, fresh, now.AddHours(1));
        await StoreAsync(store, kept, null);
        var uploadId = await store.BeginUploadAsync(abandoned, null, CancellationToken.None);
        await store.SaveCheckpointAsync(Checkpoint(abandoned, uploadId, now.AddHours(-1)), CancellationToken.None);

        var options = Options.Create(new StorageOptions { AbandonAfter = TimeSpan.FromMinutes(10) });
        var registry = new UploadRegistry(store, Options.Create(new IngestOptions()), options, NullLogger<UploadRegistry>.Instance);
        using var auditLog = new StringWriter();
        var audit = new AuditTrail(auditLog, null, null, TimeProvider.System, NullLoggerFactory.Instance);
        var sweeper = new RetentionSweeper(store, registry, options, NullLogger<RetentionSweeper>.Instance, audit);
        var (deleted, aborted) = await sweeper.SweepAsync(now, CancellationToken.None);

        Assert.Equal((1, 1), (deleted, aborted));
        var line = System.Text.Json.JsonDocument.Parse(Assert.Single(auditLog.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries))).RootElement;
        Assert.Equal(("expired", "uid-old", "web-0"), (line.GetProperty("event").GetString(), line.GetProperty("captureUid").GetString(), line.GetProperty("pod").GetString()));
        Assert.Equal(store.UriOf(expired), line.GetProperty("artifact").GetProperty("uri").GetString());
        Assert.False(await exists("captures/default/old/web-0.pcap"));
        Assert.False(await exists("captures/default/old/web-0.manifest.json"));
        Assert.True(await exists("captures/default/new/web-0.pcap"));
        Assert.True(await exists("captures/default/new/web-0.manifest.json"));
        Assert.True(await exists("captures/default/kept/web-0.pcap"));
        Assert.Null(await store.LoadCheckpointAsync(abandoned, CancellationToken.None));
        Assert.Equal(["uid-kept", "uid-new"], (await store.ListStoredAsync(CancellationToken.None).ToListAsync()).Select(m => m.CaptureUid).Order());
    }

    private static async Task StoreAsync(IArtifactStore store, CaptureIdentity target, DateTimeOffset? expiresAt)
    {
        var data = System.Text.Encoding.ASCII.GetBytes("pcap bytes of " + target.CaptureUid);
        var uploadId = await store.BeginUploadAsync(target, expiresAt, CancellationToken.None);
        var etag = await store.UploadPartAsync(target, uploadId, 1, data, CancellationToken.None);
        var checkpoint = Checkpoint(target, uploadId, DateTimeOffset.UtcNow) with { Offset = data.Length, Parts = [new UploadedPart(1, data.Length, etag)], ExpiresAt = expiresAt };
        await store.CompleteUploadAsync(checkpoint, new StoredCaptureManifest
        {
            CaptureUid = target.CaptureUid,
            Namespace = target.Namespace,
            CaptureName = target.CaptureName,
            Pod = target.Pod,
            Uri = store.UriOf(target),
            Size = data.Length,
            Sha256 = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(data)),
            StoredAt = DateTimeOffset.UtcNow,
            ExpiresAt = expiresAt,
        }, StorageJsonContext.Unsigned, CancellationToken.None);
    }

    private static UploadCheckpoint Checkpoint(CaptureIdentity target, string uploadId, DateTimeOffset updatedAt) => new()
    {
        Target = target,
        SessionId = "s",
        UploadId = uploadId,
        Offset = 0,
        Parts = [],
        Sha256State = new ResumableSha256().ExportState(),
        StartedAt = updatedAt,
        UpdatedAt = updatedAt,
    };
}
