using Grpc.Core;
using KubeCapture.Contracts;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Storage;
using KubeCapture.Operator.Tests.Ingest;
using KubeCapture.Testing.Processes;
using KubeCapture.Testing.S3;
using Microsoft.Extensions.DependencyInjection;

namespace KubeCapture.Operator.Tests.Storage;

/// <summary>
/// The ingest's storage behaviour, written once and run against every S3 server the tests have
/// (the concrete classes below): a real capture streamed as a multipart upload, an abort that
/// publishes nothing, a resume after the operator is killed, a SHA-256 mismatch, and storage going
/// down for a while or for good. Sizes are in parts, so a server that enforces S3's 5 MiB minimum
/// part size (RGW) gets real multipart uploads of several parts.
/// </summary>
public abstract class IngestStorageTests
{
    /// <summary>Storage:PartSize for this server.</summary>
    protected abstract int PartSize { get; }

    protected abstract Task<IS3TestServer> StartStorageAsync();

    /// <summary>While an upload is open: what the server shows of it (nothing to check where it cannot list uploads).</summary>
    protected virtual Task AssertUploadInProgressAsync(IS3TestServer s3, string key, string uploadId, int atLeastParts) => Task.CompletedTask;

    /// <summary>After Complete: what the server says of an object made of <paramref name="parts"/> parts (nothing where its ETag does not tell).</summary>
    protected virtual Task AssertCompletedFromPartsAsync(IS3TestServer s3, string key, int parts) => Task.CompletedTask;

    /// <summary>After an abort: nothing of the upload is left on the server (where it can abort at all).</summary>
    protected virtual Task AssertNothingLeftOfUploadAsync(IS3TestServer s3, string key, string uploadId) => Task.CompletedTask;

    [StorageFact]
    public async Task RealCaptureIsStreamedThroughTheIngestAsAVerifiedMultipartObjectThatTcpdumpReads()
    {
        await using var s3 = await StartStorageAsync();
        await using var host = await OperatorHost.StartInProcessAsync(OperatorHost.S3Settings(s3, PartSize));
        await using var traffic = new LoopbackTraffic();
        var target = new CaptureIdentity("0b6f3c1e-5d2a-4c57-9b1e-1f0e2d3c4b5a", "payments", "partner-timeouts", "api-7d9f");
        var key = "captures/payments/partner-timeouts/api-7d9f.pcap";
        long sent = 2 * PartSize + (1 << 20);

        await using var agent = await AgentRun.StartAsync(host, target, traffic.Filter);
        await traffic.SendAsync(sent, pause: TimeSpan.FromMilliseconds(1));
        await Task.Delay(1000); // a stop does not drain the kernel's capture buffer (as in tcpdump)
        agent.Signal("TERM");
        Assert.Equal(0, await agent.WaitForExitAsync(TimeSpan.FromSeconds(60)));

        var status = await host.Services.GetRequiredService<IIngestStatus>().GetAsync(target, CancellationToken.None);
        Assert.NotNull(status);
        Assert.Equal(UploadPhase.Finished, status.Phase);
        Assert.Equal($"s3://{s3.Bucket}/{key}", status.Artifact!.Uri);
        Assert.Equal(AgentRun.ReportedSha256(agent), status.Artifact.Sha256);
        Assert.NotNull(status.Artifact.ExpiresAt);

        var downloaded = Path.Combine(Directory.CreateTempSubdirectory("kcI-e2e-").FullName, "api-7d9f.pcap");
        await File.WriteAllBytesAsync(downloaded, await s3.ReadObjectAsync(key) ?? throw new InvalidOperationException($"{key} is not in {s3.Name}"));
        Assert.Equal(status.Artifact.Sha256, Evidence.Sha256Of(downloaded));
        Assert.Equal(status.Artifact.Size, new FileInfo(downloaded).Length);
        Assert.True(status.Artifact.Size > sent, $"{sent} bytes of traffic captured whole (-s 0) make more pcap than that, got {status.Artifact.Size}");

        Assert.True(status.Artifact.Size > 2 * PartSize, $"a pcap of {status.Artifact.Size} bytes is more than two parts of {PartSize}");
        await AssertCompletedFromPartsAsync(s3, key, (int)((status.Artifact.Size + PartSize - 1) / PartSize));

        var lines = Evidence.TcpdumpLines(downloaded);
        Assert.Equal(status.Manifest!.PacketsWritten, lines.Count);
        Assert.Contains(lines, l => l.Contains($"> 127.0.0.1.{traffic.Port}: Flags [S]", StringComparison.Ordinal));
        Assert.All(lines, l => Assert.Contains($".{traffic.Port}", l, StringComparison.Ordinal));

        using var store = StoreOf(s3);
        var manifest = await store.FindStoredAsync(target, CancellationToken.None);
        Assert.NotNull(manifest);
        Assert.True(manifest.Complete);
        Assert.Equal(status.Artifact.Sha256, manifest.Sha256);
        Assert.Equal("signal", manifest.Agent!.StopReason);

        var stat = await store.Minio.StatObjectAsync(new Minio.DataModel.Args.StatObjectArgs().WithBucket(s3.Bucket).WithObject(key));
        Assert.Equal(target.CaptureUid, stat.MetaData.First(m => m.Key.Contains("capture-uid", StringComparison.OrdinalIgnoreCase)).Value);
        Assert.Null(await store.LoadCheckpointAsync(target, CancellationToken.None));
    }

    [StorageFact]
    public async Task ShaMismatchAbortsTheUploadSaysSoAndLeavesNothingBehind()
    {
        await using var s3 = await StartStorageAsync();
        await using var host = await OperatorHost.StartInProcessAsync(OperatorHost.S3Settings(s3, PartSize));
        using var store = StoreOf(s3);
        var target = new CaptureIdentity("uid-sha", "default", "tampered", "web-0");
        using var agent = TestAgent.For(host, target);
        long total = 2 * PartSize + 1000;

        using var upload = await agent.OpenAsync();
        await upload.SendPatternAsync(0, total);
        await upload.WaitForAckAsync(2 * PartSize, TimeSpan.FromSeconds(30));
        var checkpoint = await store.LoadCheckpointAsync(target, CancellationToken.None);
        Assert.NotNull(checkpoint);
        await AssertUploadInProgressAsync(s3, "captures/default/tampered/web-0.pcap", checkpoint.UploadId, 2);
        var wrong = Pattern.Sha256(total - 1);
        var failure = await Assert.ThrowsAsync<RpcException>(() => upload.FinishAsync(total, wrong));

        Assert.Equal(StatusCode.DataLoss, failure.StatusCode);
        Assert.Contains($"SHA-256 mismatch: the agent computed {wrong}, the {total} bytes the ingest received hash to {Pattern.Sha256(total)}", failure.Status.Detail, StringComparison.Ordinal);
        var status = await host.Services.GetRequiredService<IIngestStatus>().GetAsync(target, CancellationToken.None);
        Assert.Equal(UploadPhase.Failed, status!.Phase);
        Assert.Contains("SHA-256 mismatch", status.Error, StringComparison.Ordinal);
        Assert.Null(await s3.ReadObjectAsync("captures/default/tampered/web-0.pcap"));
        Assert.Null(await s3.ReadObjectAsync("captures/default/tampered/web-0.manifest.json"));
        Assert.Null(await s3.ReadObjectAsync("captures/.ingest/default/tampered/web-0.json"));
        await AssertNothingLeftOfUploadAsync(s3, "captures/default/tampered/web-0.pcap", checkpoint.UploadId);
    }

    [StorageFact]
    public async Task RealAgentKilledMidCaptureHasItsUploadAbortedAfterTheResumeWindowAndNothingIsLeft()
    {
        await using var s3 = await StartStorageAsync();
        var settings = OperatorHost.S3Settings(s3, PartSize);
        settings["Ingest:ResumeWindow"] = "00:00:01";
        await using var host = await OperatorHost.StartInProcessAsync(settings);
        using var store = StoreOf(s3);
        await using var traffic = new LoopbackTraffic();
        var target = new CaptureIdentity("uid-killed", "default", "killed", "web-0");
        await using var agent = await AgentRun.StartAsync(host, target, traffic.Filter);
        using var stopTraffic = new CancellationTokenSource();
        var sending = traffic.SendAsync(long.MaxValue, pause: TimeSpan.FromMilliseconds(5), cancellationToken: stopTraffic.Token);

        var checkpoint = await WaitForCheckpointAsync(store, target, PartSize);
        await AssertUploadInProgressAsync(s3, "captures/default/killed/web-0.pcap", checkpoint.UploadId, 1);
        await agent.KillAsync();
        await stopTraffic.CancelAsync();
        await StoppedAsync(sending);

        var failed = await IngestProtocolTests.WaitForAsync(host.Services.GetRequiredService<IIngestStatus>(), target, UploadPhase.Failed, TimeSpan.FromSeconds(30));
        Assert.Contains("the agent disconnected after", failed.Error, StringComparison.Ordinal);
        Assert.Null(await s3.ReadObjectAsync("captures/default/killed/web-0.pcap"));
        Assert.Null(await s3.ReadObjectAsync("captures/default/killed/web-0.manifest.json"));
        Assert.Null(await store.LoadCheckpointAsync(target, CancellationToken.None));
        await AssertNothingLeftOfUploadAsync(s3, "captures/default/killed/web-0.pcap", checkpoint.UploadId);
    }

    [StorageFact]
    public async Task FinishWithoutAnyByteStoresAnEmptyObject()
    {
        await using var s3 = await StartStorageAsync();
        await using var host = await OperatorHost.StartInProcessAsync(OperatorHost.S3Settings(s3, PartSize));
        using var agent = TestAgent.For(host, new CaptureIdentity("uid-empty", "default", "empty", "web-0"));

        var (stored, sha) = await agent.UploadWholeAsync(0); // no part at all: S3 refuses to complete an upload of none

        Assert.Equal(0, stored.Size);
        Assert.Equal(Pattern.Sha256(0), sha);
        Assert.Equal(sha, stored.Sha256);
        var pcap = await s3.ReadObjectAsync("captures/default/empty/web-0.pcap");
        Assert.NotNull(pcap);
        Assert.Empty(pcap);
        Assert.NotNull(await s3.ReadObjectAsync("captures/default/empty/web-0.manifest.json"));
    }

    [StorageFact]
    public async Task StorageDownMidUploadThenBackTheUploadCompletesIntact()
    {
        await using var s3 = await StartStorageAsync();
        await using var host = await OperatorHost.StartInProcessAsync(OperatorHost.S3Settings(s3, PartSize));
        var target = new CaptureIdentity("uid-s3-blip", "default", "blip", "web-0");
        using var agent = TestAgent.For(host, target);
        long total = 5 * PartSize + 12345;
        long beforeOutage = 3 * PartSize;

        using var upload = await agent.OpenAsync();
        await upload.SendPatternAsync(0, beforeOutage);
        await upload.WaitForAckAsync(PartSize, TimeSpan.FromSeconds(30));
        await s3.StopAsync();
        var sending = upload.SendPatternAsync(beforeOutage, total);
        await Task.Delay(2000);
        var acknowledgedDuringOutage = upload.Acknowledged;
        await s3.StartAsync();
        await sending;
        var stored = await upload.FinishAsync(total, Pattern.Sha256(total));

        Assert.True(acknowledgedDuringOutage <= beforeOutage + PartSize, $"nothing beyond what {s3.Name} held can be acknowledged while it is down ({acknowledgedDuringOutage})");
        Assert.Equal(total, stored.Size);
        Assert.Equal(Pattern.Sha256(total), stored.Sha256);
        Assert.Equal(Pattern.Sha256(total), Sha256((await s3.ReadObjectAsync("captures/default/blip/web-0.pcap"))!));
    }

    [StorageFact]
    public async Task StorageDownForGoodFailsTheUploadClearlyAndNoCompleteLookingObjectExists()
    {
        await using var s3 = await StartStorageAsync();
        var settings = OperatorHost.S3Settings(s3, PartSize);
        settings["Storage:RetryBudget"] = "00:00:02";
        await using var host = await OperatorHost.StartInProcessAsync(settings);
        var target = new CaptureIdentity("uid-s3-gone", "default", "gone", "web-0");
        var status = host.Services.GetRequiredService<IIngestStatus>();
        using var agent = TestAgent.For(host, target);

        using var upload = await agent.OpenAsync();
        await upload.SendPatternAsync(0, PartSize + 1000);
        await upload.WaitForAckAsync(PartSize, TimeSpan.FromSeconds(30));
        await s3.StopAsync();
        await Assert.ThrowsAsync<RpcException>(async () =>
        {
            await upload.SendPatternAsync(PartSize + 1000, 4 * PartSize);
            await upload.FinishAsync(4 * PartSize, Pattern.Sha256(4 * PartSize));
        });
        var failure = await upload.FailureAsync();

        Assert.Equal(StatusCode.Unavailable, failure.StatusCode);
        Assert.Contains("object storage is unavailable", failure.Status.Detail, StringComparison.Ordinal);
        var failed = await status.GetAsync(target, CancellationToken.None);
        Assert.Equal(UploadPhase.Failed, failed!.Phase);
        Assert.Contains("failed for 2s", failed.Error, StringComparison.Ordinal);
        var refused = await Assert.ThrowsAsync<RpcException>(() => agent.OpenAsync());
        Assert.Equal(StatusCode.FailedPrecondition, refused.StatusCode);

        await s3.StartAsync(); // look inside: nothing that looks like a capture
        Assert.Null(await s3.ReadObjectAsync("captures/default/gone/web-0.pcap"));
        Assert.Null(await s3.ReadObjectAsync("captures/default/gone/web-0.manifest.json"));
    }

    [StorageFact]
    public async Task RetentionSweeperDeletesExpiredCapturesKeepsTheOthersAndAbortsAbandonedUploads()
    {
        await using var s3 = await StartStorageAsync(); // lists through the s3rver namespace fix; RGW answers right
        using var store = StoreOf(s3);
        await RetentionSweeperTests.SweepAndCheckAsync(store, async key => await s3.ReadObjectAsync(key) is not null);
    }

    [StorageFact]
    public async Task OperatorIsReadyOnlyWhileItsS3StorageAnswersButStaysLive()
    {
        await using var s3 = await StartStorageAsync();
        await using var host = await OperatorHost.StartInProcessAsync(OperatorHost.S3Settings(s3, PartSize));
        using var http = new HttpClient();
        Assert.Equal(System.Net.HttpStatusCode.OK, (await http.GetAsync($"http://127.0.0.1:{host.HttpPort}/readyz")).StatusCode);

        await s3.StopAsync();
        Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, (await http.GetAsync($"http://127.0.0.1:{host.HttpPort}/readyz")).StatusCode);
        Assert.Equal(System.Net.HttpStatusCode.OK, (await http.GetAsync($"http://127.0.0.1:{host.HttpPort}/healthz")).StatusCode);
        await s3.StartAsync();
        Assert.Equal(System.Net.HttpStatusCode.OK, (await http.GetAsync($"http://127.0.0.1:{host.HttpPort}/readyz")).StatusCode);
    }

    public static S3ArtifactStore StoreOf(IS3TestServer s3) =>
        new(new S3Options { Endpoint = s3.Endpoint, Bucket = s3.Bucket, AccessKey = s3.AccessKey, SecretKey = s3.SecretKey }, "captures");

    public static async Task<UploadCheckpoint> WaitForCheckpointAsync(IArtifactStore store, CaptureIdentity target, long atLeast)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            try
            {
                if (await store.LoadCheckpointAsync(target, CancellationToken.None) is { } checkpoint && checkpoint.Offset >= atLeast)
                {
                    return checkpoint;
                }
            }
            catch (Exception e) when (e is System.Text.Json.JsonException or HttpRequestException or IOException)
            {
                // read while s3rver was replacing it
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"the checkpoint of {target.Pod} did not reach {atLeast} bytes within 60s");
            }

            await Task.Delay(50);
        }
    }

    protected static string Sha256(byte[] data) => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(data));

    protected static async Task StoppedAsync(Task sending)
    {
        try
        {
            await sending;
        }
        catch (OperationCanceledException)
        {
            // the traffic was stopped, as intended
        }
    }
}

/// <summary>The storage tests against s3rver (a process per test; 64 KiB parts, which it accepts).</summary>
public sealed class IngestStorageOnS3rverTests : IngestStorageTests
{
    protected override int PartSize => 64 << 10;

    protected override async Task<IS3TestServer> StartStorageAsync() => await S3rverFixture.StartAsync();

    [StorageFact]
    public async Task A_checkpoint_the_storage_will_not_delete_after_the_pcap_is_published_leaves_the_upload_stored_not_failed()
    {
        await using var s3 = await S3rverFixture.StartAsync();
        var settings = OperatorHost.S3Settings(s3, PartSize);
        settings["Storage:RetryBudget"] = "00:00:02";
        await using var host = await OperatorHost.StartInProcessAsync(settings);
        var target = new CaptureIdentity("uid-kept-checkpoint", "default", "kept", "web-0");
        using var agent = TestAgent.For(host, target);
        long total = PartSize + 1000;
        using var upload = await agent.OpenAsync();
        await upload.SendPatternAsync(0, total);
        await upload.WaitForAckAsync(PartSize, TimeSpan.FromSeconds(30));
        // The checkpoint's folder made immutable: s3rver still rewrites the checkpoint in place, but
        // answers its DELETE with 500 InternalError (the unlink is refused), for the whole retry budget.
        var folder = Path.Combine(s3.DataDirectory, s3.Bucket, "captures", ".ingest", "default", "kept");
        Assert.True(Directory.Exists(folder), folder);
        (await HostCommand.RunAsync("chattr", "+i", folder)).EnsureSuccess();
        try
        {
            var stored = await upload.FinishAsync(total, Pattern.Sha256(total));

            Assert.Equal((total, Pattern.Sha256(total)), (stored.Size, stored.Sha256));
            var status = await host.Services.GetRequiredService<IIngestStatus>().GetAsync(target, CancellationToken.None);
            Assert.Equal(UploadPhase.Finished, status!.Phase);
            Assert.Equal(Pattern.Sha256(total), Sha256((await s3.ReadObjectAsync("captures/default/kept/web-0.pcap"))!));
            Assert.NotNull(await s3.ReadObjectAsync("captures/default/kept/web-0.manifest.json"));
            Assert.NotNull(await s3.ReadObjectAsync("captures/.ingest/default/kept/web-0.json")); // left for the retention sweeper
        }
        finally
        {
            (await HostCommand.RunAsync("chattr", "-i", folder)).EnsureSuccess();
        }
    }
}

/// <summary>
/// The storage tests against Ceph RADOS Gateway (a bucket per test on the run's shared gateway; 5 MiB
/// parts, S3's minimum, which RGW enforces). RGW really aborts: after an abort the upload is gone
/// from ListMultipartUploads, ListParts says NoSuchUpload, and its bucket index holds no part.
/// </summary>
[RequiresCephRgw]
[Collection(CephRgwCollection.Name)]
public sealed class IngestStorageOnCephRgwTests : IngestStorageTests
{
    protected override int PartSize => 5 << 20;

    protected override async Task<IS3TestServer> StartStorageAsync() => await CephRgwFixture.StartAsync();

    protected override async Task AssertUploadInProgressAsync(IS3TestServer s3, string key, string uploadId, int atLeastParts)
    {
        var rgw = (CephRgwFixture)s3;
        Assert.Contains(new MultipartUploadInfo(key, uploadId), await rgw.ListMultipartUploadsAsync());
        var parts = await rgw.ListPartsAsync(key, uploadId);
        Assert.NotNull(parts);
        Assert.True(parts.Count >= atLeastParts, $"{parts.Count} parts stored, expected at least {atLeastParts}");
        Assert.All(parts, p => Assert.Equal(PartSize, p.Size));
        Assert.Contains(await rgw.BucketIndexAsync(), name => name.StartsWith("_multipart_", StringComparison.Ordinal));
    }

    protected override async Task AssertCompletedFromPartsAsync(IS3TestServer s3, string key, int parts) =>
        Assert.EndsWith($"-{parts}\"", await ((CephRgwFixture)s3).HeadETagAsync(key), StringComparison.Ordinal); // S3's ETag of an object completed from N parts

    /// <summary>
    /// RGW enforces S3's 5 MiB minimum part size at CompleteMultipartUpload (s3rver does not): a refusal
    /// that no retry can change fails the upload at once with the server's reason, and the upload is aborted.
    /// </summary>
    [StorageFact]
    public async Task PartsBelowTheServersMinimumFailTheUploadAtOnceWithItsReasonAndTheUploadIsAborted()
    {
        await using var s3 = await StartStorageAsync();
        var settings = OperatorHost.S3Settings(s3, 1 << 20);
        settings["Storage:RetryBudget"] = "00:01:00";
        await using var host = await OperatorHost.StartInProcessAsync(settings);
        using var store = StoreOf(s3);
        var target = new CaptureIdentity("uid-small-parts", "default", "small-parts", "web-0");
        using var agent = TestAgent.For(host, target);
        const long Total = (5 << 20) / 2;

        using var upload = await agent.OpenAsync();
        await upload.SendPatternAsync(0, Total);
        await upload.WaitForAckAsync(2 << 20, TimeSpan.FromSeconds(30));
        var uploadId = (await store.LoadCheckpointAsync(target, CancellationToken.None))!.UploadId;
        var started = DateTime.UtcNow;
        var failure = await Assert.ThrowsAsync<RpcException>(() => upload.FinishAsync(Total, Pattern.Sha256(Total)));
        var took = DateTime.UtcNow - started;

        Assert.Contains("EntityTooSmall", failure.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("object storage refused", failure.Status.Detail, StringComparison.Ordinal);
        Assert.True(took < TimeSpan.FromSeconds(15), $"a refusal is not retried for the whole budget of 60s (took {took.TotalSeconds:0.0}s)");
        var failed = await host.Services.GetRequiredService<IIngestStatus>().GetAsync(target, CancellationToken.None);
        Assert.Equal(UploadPhase.Failed, failed!.Phase);
        Assert.Null(await s3.ReadObjectAsync("captures/default/small-parts/web-0.pcap"));
        Assert.Null(await store.LoadCheckpointAsync(target, CancellationToken.None));
        await AssertNothingLeftOfUploadAsync(s3, "captures/default/small-parts/web-0.pcap", uploadId);
    }

    /// <summary>
    /// Only on RGW, whose PUT is atomic: s3rver 3.7.1 writes an object's file as the body arrives, so
    /// an operator SIGKILLed in the middle of a checkpoint's PUT (a checkpoint is saved after every
    /// part, and the traffic keeps flowing) leaves an empty checkpoint that no S3 service would, and
    /// the restarted operator rightly refuses to resume from it.
    /// </summary>
    [StorageFact]
    public async Task OperatorKilledMidCaptureIsRestartedAndTheRealAgentResumesTheSameUploadToACompleteVerifiedObject()
    {
        await using var s3 = await StartStorageAsync();
        await using var host = await OperatorHost.StartProcessAsync(OperatorHost.S3Settings(s3, PartSize));
        using var store = StoreOf(s3);
        await using var traffic = new LoopbackTraffic();
        var target = new CaptureIdentity("uid-restart", "payments", "restart", "api-0");
        await using var agent = await AgentRun.StartAsync(host, target, traffic.Filter);
        using var stopTraffic = new CancellationTokenSource();
        var sending = traffic.SendAsync(long.MaxValue, pause: TimeSpan.FromMilliseconds(2), cancellationToken: stopTraffic.Token);

        var before = await WaitForCheckpointAsync(store, target, PartSize);
        await host.KillAsync();
        await Task.Delay(1000);
        await host.StartProcessAsync();
        UploadCheckpoint after;
        try
        {
            after = await WaitForCheckpointAsync(store, target, before.Offset + PartSize);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}\nagent:\n{agent.Output}\noperator after the restart:\n{host.Process!.Output}", e);
        }

        Assert.Equal(before.UploadId, after.UploadId); // the new process continued the same multipart upload

        await stopTraffic.CancelAsync();
        await StoppedAsync(sending);
        await Task.Delay(500);
        agent.Signal("TERM");
        Assert.Equal(0, await agent.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("upload interrupted", agent.Output, StringComparison.Ordinal);

        var stored = await store.FindStoredAsync(target, CancellationToken.None);
        Assert.NotNull(stored);
        var pcap = Path.Combine(Directory.CreateTempSubdirectory("kcI-restart-").FullName, "api-0.pcap");
        await File.WriteAllBytesAsync(pcap, (await s3.ReadObjectAsync("captures/payments/restart/api-0.pcap"))!);
        Assert.Equal(AgentRun.ReportedSha256(agent), stored.Sha256);
        Assert.Equal(stored.Sha256, Evidence.Sha256Of(pcap));
        Assert.Equal(stored.Agent!.PacketsWritten, Evidence.TcpdumpLines(pcap).Count);
    }

    /// <summary>
    /// Several pods of one capture streaming at once (keys per pod, one folder per capture). Only on
    /// RGW: s3rver 3.7.1 cannot take it. Its DeleteObject removes the key's emptied parent folders with
    /// an unguarded readdirSync + rmdir, so two checkpoints of one capture deleted at the same moment
    /// make one DELETE fail with 500 (scandir ENOENT); the ingest then retries the publish step, and
    /// s3rver answers CompleteMultipartUpload of the already completed upload with 500 (ENOENT on the
    /// upload's key file) instead of NoSuchUpload, so that pod's capture fails. Its PUT also truncates
    /// the object before writing it, so a checkpoint read during a save is torn JSON.
    /// </summary>
    [StorageFact]
    public async Task RealAgentsOfSeveralPodsOfOneCaptureStreamingAtOnceAreEachStoredWithTheShaTheirAgentReports()
    {
        await using var s3 = await StartStorageAsync();
        await using var host = await OperatorHost.StartInProcessAsync(OperatorHost.S3Settings(s3, PartSize));
        await using var traffic = new LoopbackTraffic();
        using var store = StoreOf(s3);
        var targets = new[] { "api-0", "api-1", "api-2" }.Select(pod => new CaptureIdentity("uid-several", "payments", "several", pod)).ToArray();
        long sent = 3 * PartSize + (1 << 20);

        var agents = await Task.WhenAll(targets.Select(t => AgentRun.StartAsync(host, t, traffic.Filter)));
        try
        {
            await traffic.SendAsync(sent, pause: TimeSpan.FromMilliseconds(1));
            await Task.Delay(1000);
            foreach (var agent in agents)
            {
                agent.Signal("TERM");
            }

            var exits = await Task.WhenAll(agents.Select(a => a.WaitForExitAsync(TimeSpan.FromSeconds(60))));
            Assert.All(exits.Select((code, i) => (code, i)), e => Assert.True(e.code == 0, $"the agent of {targets[e.i].Pod} exited {e.code}:\n{agents[e.i].Output}"));

            for (var i = 0; i < targets.Length; i++)
            {
                var key = $"captures/payments/several/{targets[i].Pod}.pcap";
                var stored = await store.FindStoredAsync(targets[i], CancellationToken.None);
                Assert.NotNull(stored);
                Assert.Equal(AgentRun.ReportedSha256(agents[i]), stored.Sha256);
                var pcap = await s3.ReadObjectAsync(key) ?? throw new InvalidOperationException($"{key} is not in {s3.Name}");
                Assert.Equal(stored.Sha256, Sha256(pcap));
                // Every byte sent, captured whole, unless the kernel dropped packets for this agent (three
                // agents copying the same flood on a loaded machine can fall behind): then the stored
                // manifest must say so, as a capture with missing pages must.
                var dropped = stored.Agent!.PacketsDroppedByKernel;
                Assert.True(pcap.Length > sent || dropped > 0, $"{targets[i].Pod}: {sent} bytes of traffic make more pcap than that, got {pcap.Length}, and the manifest reports {dropped} packets dropped by the kernel");
                Assert.Null(await store.LoadCheckpointAsync(targets[i], CancellationToken.None));
            }

            Assert.Empty(await ((CephRgwFixture)s3).ListMultipartUploadsAsync());
        }
        finally
        {
            foreach (var agent in agents)
            {
                await agent.DisposeAsync();
            }
        }
    }

    protected override async Task AssertNothingLeftOfUploadAsync(IS3TestServer s3, string key, string uploadId)
    {
        var rgw = (CephRgwFixture)s3;
        Assert.Empty(await rgw.ListMultipartUploadsAsync());
        Assert.Null(await rgw.ListPartsAsync(key, uploadId));
        Assert.DoesNotContain(await rgw.BucketIndexAsync(), name => name.Contains("multipart", StringComparison.Ordinal) || name.Contains(".pcap", StringComparison.Ordinal));
    }
}
