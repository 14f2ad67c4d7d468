using Grpc.Core;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Storage;
using KubeCapture.Testing.S3;
using Microsoft.Extensions.DependencyInjection;

namespace KubeCapture.Operator.Tests.Ingest;

/// <summary>Faults on every side of the ingest: the operator killed, the storage down for a while or for good, the agent killed.</summary>
public sealed class IngestFaultTests
{
    [Fact]
    public async Task OperatorKilledMidCaptureIsRestartedAndTheRealAgentResumesToACompleteVerifiedObject()
    {
        await using var s3 = await S3rverFixture.StartAsync();
        await using var host = await OperatorHost.StartProcessAsync(OperatorHost.S3Settings(s3));
        using var store = StoreOf(s3);
        await using var traffic = new LoopbackTraffic();
        var target = new CaptureIdentity("uid-restart", "payments", "restart", "api-0");
        await using var agent = await AgentRun.StartAsync(host.IngestUrl, target, traffic.Filter);
        using var stopTraffic = new CancellationTokenSource();
        var sending = traffic.SendAsync(long.MaxValue, pause: TimeSpan.FromMilliseconds(5), cancellationToken: stopTraffic.Token);

        var before = await WaitForCheckpointAsync(store, target, 256 << 10);
        await host.KillAsync();
        await Task.Delay(1000);
        await host.StartProcessAsync();
        var after = await WaitForCheckpointAsync(store, target, before.Offset + (256 << 10));
        Assert.Equal(before.UploadId, after.UploadId); // the new process continued the same multipart upload

        await stopTraffic.CancelAsync();
        await StoppedAsync(sending);
        await Task.Delay(500);
        agent.Signal("TERM");
        Assert.Equal(0, await agent.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("upload interrupted", agent.Output, StringComparison.Ordinal);

        var stored = await store.FindStoredAsync(target, CancellationToken.None);
        Assert.NotNull(stored);
        var pcap = s3.ObjectPath("captures/payments/restart/api-0.pcap")!;
        Assert.Equal(AgentRun.ReportedSha256(agent), stored.Sha256);
        Assert.Equal(stored.Sha256, Evidence.Sha256Of(pcap));
        Assert.Equal(stored.Agent!.PacketsWritten, Evidence.TcpdumpLines(pcap).Count);
    }

    [Fact]
    public async Task S3rverStoppedMidUploadThenRestartedTheUploadCompletesIntact()
    {
        await using var s3 = await S3rverFixture.StartAsync();
        await using var host = await OperatorHost.StartInProcessAsync(OperatorHost.S3Settings(s3));
        var target = new CaptureIdentity("uid-s3-blip", "default", "blip", "web-0");
        using var agent = TestAgent.For(host, target);
        const long Total = 2 << 20;

        using var upload = await agent.OpenAsync();
        await upload.SendPatternAsync(0, 512 << 10);
        await upload.WaitForAckAsync(256 << 10, TimeSpan.FromSeconds(20));
        await s3.StopAsync();
        var sending = upload.SendPatternAsync(512 << 10, Total);
        await Task.Delay(2000);
        var acknowledgedDuringOutage = upload.Acknowledged;
        await s3.StartAsync();
        await sending;
        var stored = await upload.FinishAsync(Total, Pattern.Sha256(Total));

        Assert.True(acknowledgedDuringOutage <= (576 << 10), $"nothing beyond what s3rver held can be acknowledged while it is down ({acknowledgedDuringOutage})");
        Assert.Equal(Pattern.Sha256(Total), stored.Sha256);
        Assert.Equal(Pattern.Sha256(Total), Evidence.Sha256Of(s3.ObjectPath("captures/default/blip/web-0.pcap")!));
    }

    [Fact]
    public async Task S3rverStoppedForGoodFailsTheUploadClearlyAndNoCompleteLookingObjectExists()
    {
        await using var s3 = await S3rverFixture.StartAsync();
        var settings = OperatorHost.S3Settings(s3);
        settings["Storage:RetryBudget"] = "00:00:02";
        await using var host = await OperatorHost.StartInProcessAsync(settings);
        var target = new CaptureIdentity("uid-s3-gone", "default", "gone", "web-0");
        var status = host.Services.GetRequiredService<IIngestStatus>();
        using var agent = TestAgent.For(host, target);

        using var upload = await agent.OpenAsync();
        await upload.SendPatternAsync(0, 300 << 10);
        await upload.WaitForAckAsync(256 << 10, TimeSpan.FromSeconds(20));
        await s3.StopAsync();
        await Assert.ThrowsAsync<RpcException>(async () =>
        {
            await upload.SendPatternAsync(300 << 10, 1 << 20);
            await upload.FinishAsync(1 << 20, Pattern.Sha256(1 << 20));
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
        Assert.Null(s3.ObjectPath("captures/default/gone/web-0.pcap"));
        Assert.Null(s3.ObjectPath("captures/default/gone/web-0.manifest.json"));
    }

    [Fact]
    public async Task RealAgentKilledMidCaptureLeavesNothingPublishedAndTheTargetFailsWithTheReason()
    {
        await using var s3 = await S3rverFixture.StartAsync();
        var settings = OperatorHost.S3Settings(s3);
        settings["Ingest:ResumeWindow"] = "00:00:01";
        await using var host = await OperatorHost.StartInProcessAsync(settings);
        using var store = StoreOf(s3);
        await using var traffic = new LoopbackTraffic();
        var target = new CaptureIdentity("uid-killed", "default", "killed", "web-0");
        await using var agent = await AgentRun.StartAsync(host.IngestUrl, target, traffic.Filter);
        using var stopTraffic = new CancellationTokenSource();
        var sending = traffic.SendAsync(long.MaxValue, pause: TimeSpan.FromMilliseconds(5), cancellationToken: stopTraffic.Token);

        await WaitForCheckpointAsync(store, target, 128 << 10);
        await agent.KillAsync();
        await stopTraffic.CancelAsync();
        await StoppedAsync(sending);

        var failed = await IngestProtocolTests.WaitForAsync(host.Services.GetRequiredService<IIngestStatus>(), target, UploadPhase.Failed, TimeSpan.FromSeconds(20));
        Assert.Contains("the agent disconnected after", failed.Error, StringComparison.Ordinal);
        Assert.Null(s3.ObjectPath("captures/default/killed/web-0.pcap"));
        Assert.Null(s3.ObjectPath("captures/default/killed/web-0.manifest.json"));
        Assert.Null(await store.LoadCheckpointAsync(target, CancellationToken.None));
    }

    private static async Task StoppedAsync(Task sending)
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

    public static S3ArtifactStore StoreOf(S3rverFixture s3) =>
        new(new S3Options { Endpoint = s3.Endpoint, Bucket = s3.Bucket, AccessKey = S3rverFixture.AccessKey, SecretKey = S3rverFixture.SecretKey }, "captures");

    private static async Task<UploadCheckpoint> WaitForCheckpointAsync(IArtifactStore store, CaptureIdentity target, long atLeast)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
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
                throw new TimeoutException($"the checkpoint of {target.Pod} did not reach {atLeast} bytes within 30s");
            }

            await Task.Delay(50);
        }
    }
}
