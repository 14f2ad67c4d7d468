using Grpc.Core;
using KubeCapture.Contracts;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Storage;
using KubeCapture.Proto.V1;
using KubeCapture.Testing.S3;
using Microsoft.Extensions.DependencyInjection;

namespace KubeCapture.Operator.Tests.Ingest;

/// <summary>The ingest's side of the protocol, driven by a test client against s3rver: tokens, resume, SHA-256, early stop.</summary>
public sealed class IngestProtocolTests
{
    [Fact]
    public async Task TokenIssuedForAnotherCaptureTargetCannotOpenThisOne()
    {
        await using var s3 = await S3rverFixture.StartAsync();
        await using var host = await OperatorHost.StartInProcessAsync(OperatorHost.S3Settings(s3));
        var mine = new CaptureIdentity("uid-a", "team-a", "cap", "pod-a");
        var theirs = mine with { Pod = "pod-b" };
        var otherCapture = mine with { CaptureUid = "uid-b" };
        var issuer = new CaptureTokenIssuer(OperatorHost.TokenSecret);

        foreach (var victim in new[] { theirs, otherCapture })
        {
            using var intruder = new TestAgent(host.IngestUrl, victim, issuer.Issue(mine), caPem: host.IngestCaPem);
            var refused = await Assert.ThrowsAsync<RpcException>(() => intruder.OpenAsync());
            Assert.Equal(StatusCode.Unauthenticated, refused.StatusCode);
            Assert.Contains("the token is not valid", refused.Status.Detail, StringComparison.Ordinal);
        }

        Assert.Null(s3.ObjectPath($"captures/.ingest/team-a/cap/pod-b.json"));
        using var rightful = TestAgent.For(host, mine);
        var (stored, sha) = await rightful.UploadWholeAsync(100_000);
        Assert.Equal(sha, stored.Sha256);
    }

    [Fact]
    public async Task CutStreamResumesFromTheAcknowledgedOffsetAndTheObjectIsWholeWithPartsUploadedConcurrently()
    {
        await using var s3 = await S3rverFixture.StartAsync();
        var settings = OperatorHost.S3Settings(s3);
        settings["Storage:PartsInFlight"] = "3"; // parts finish out of order; they are committed in order
        await using var host = await OperatorHost.StartInProcessAsync(settings);
        var target = new CaptureIdentity("uid-cut", "default", "flaky-network", "web-0");
        using var agent = TestAgent.For(host, target);
        const long Total = 3 << 20;

        var first = await agent.OpenAsync();
        Assert.Equal(0, first.ResumeOffset);
        await first.SendPatternAsync(0, 1_000_000);
        await first.WaitForAckAsync(512 << 10, TimeSpan.FromSeconds(20));
        first.Cut();

        using var second = await agent.OpenAsync();
        Assert.True(second.ResumeOffset >= 512 << 10 && second.ResumeOffset <= 1_000_000, $"resume at {second.ResumeOffset}");
        Assert.Equal(0, second.ResumeOffset % (64 << 10)); // only whole, stored parts are acknowledged
        await second.SendPatternAsync(second.ResumeOffset, Total);
        var stored = await second.FinishAsync(Total, Pattern.Sha256(Total));

        Assert.Equal(Total, stored.Size);
        Assert.Equal(Pattern.Sha256(Total), stored.Sha256);
        Assert.Equal(Pattern.Sha256(Total), Evidence.Sha256Of(s3.ObjectPath("captures/default/flaky-network/web-0.pcap")!));
    }

    [Fact]
    public async Task ChunkAtTheWrongOffsetIsRefusedWithTheOffsetExpected()
    {
        var root = Directory.CreateTempSubdirectory("kcI-offset-").FullName;
        await using var host = await OperatorHost.StartInProcessAsync(new Dictionary<string, string> { ["Storage:LocalPath"] = root });
        using var agent = TestAgent.For(host, new CaptureIdentity("uid-gap", "default", "gap", "web-0"));
        using var upload = await agent.OpenAsync();
        await upload.SendPatternAsync(0, 1000);
        await upload.SendAsync(new AgentMessage { Chunk = new Chunk { Offset = 2000, Data = Google.Protobuf.ByteString.CopyFrom(new byte[10]) } });
        // The status the ingest ends the stream with (a Finish written after that would race the call's end).
        var failure = await upload.FailureAsync();
        Assert.Equal(StatusCode.InvalidArgument, failure.StatusCode);
        Assert.Contains("a chunk starts at byte 2000, but the next byte expected is 1000", failure.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AgentThatDoesNotComeBackHasItsUploadAbortedAfterTheResumeWindowAndNothingIsVisible()
    {
        await using var s3 = await S3rverFixture.StartAsync();
        var settings = OperatorHost.S3Settings(s3);
        settings["Ingest:ResumeWindow"] = "00:00:01";
        await using var host = await OperatorHost.StartInProcessAsync(settings);
        var target = new CaptureIdentity("uid-gone", "default", "vanished", "web-0");
        var status = host.Services.GetRequiredService<IIngestStatus>();
        using var agent = TestAgent.For(host, target);

        var upload = await agent.OpenAsync();
        await upload.SendPatternAsync(0, 500_000);
        await upload.WaitForAckAsync(256 << 10, TimeSpan.FromSeconds(20));
        Assert.NotNull(s3.ObjectPath("captures/.ingest/default/vanished/web-0.json"));
        upload.Cut();

        var failed = await WaitForAsync(status, target, UploadPhase.Failed, TimeSpan.FromSeconds(20));
        Assert.Contains("did not come back within 1s; the incomplete upload was aborted and nothing was published", failed.Error, StringComparison.Ordinal);
        Assert.Null(s3.ObjectPath("captures/default/vanished/web-0.pcap"));
        Assert.Null(s3.ObjectPath("captures/default/vanished/web-0.manifest.json"));
        Assert.Null(s3.ObjectPath("captures/.ingest/default/vanished/web-0.json"));

        var late = await Assert.ThrowsAsync<RpcException>(() => agent.OpenAsync());
        Assert.Equal(StatusCode.FailedPrecondition, late.StatusCode);
    }

    [Fact]
    public async Task EarlyStopReachesConnectedAgentsAndAgentsThatConnectLater()
    {
        var root = Directory.CreateTempSubdirectory("kcI-stop-").FullName;
        await using var host = await OperatorHost.StartInProcessAsync(new Dictionary<string, string> { ["Storage:LocalPath"] = root });
        var status = host.Services.GetRequiredService<IIngestStatus>();
        var early = new CaptureIdentity("uid-stop", "default", "stop-me", "web-0");
        var later = early with { Pod = "web-1" };
        var bystander = early with { CaptureUid = "uid-other", CaptureName = "keep-going" };

        using var earlyAgent = TestAgent.For(host, early);
        using var bystanderAgent = TestAgent.For(host, bystander);
        using var earlyUpload = await earlyAgent.OpenAsync();
        using var bystanderUpload = await bystanderAgent.OpenAsync();
        await earlyUpload.SendPatternAsync(0, 1000);
        await bystanderUpload.SendPatternAsync(0, 1000);
        status.RequestStop("uid-stop");

        await WaitForMessageAsync(earlyUpload, IngestMessage.BodyOneofCase.Stop);
        using var laterAgent = TestAgent.For(host, later);
        using var laterUpload = await laterAgent.OpenAsync();
        await laterUpload.SendPatternAsync(0, 10);
        await WaitForMessageAsync(laterUpload, IngestMessage.BodyOneofCase.Stop);
        Assert.DoesNotContain(bystanderUpload.Received, m => m.BodyCase == IngestMessage.BodyOneofCase.Stop);

        var stored = await earlyUpload.FinishAsync(1000, Pattern.Sha256(1000));
        Assert.Equal(1000, stored.Size);
    }

    [Fact]
    public async Task ReconnectAfterThePcapWasStoredIsConfirmedWithoutStoringAgain()
    {
        await using var s3 = await S3rverFixture.StartAsync();
        await using var host = await OperatorHost.StartInProcessAsync(OperatorHost.S3Settings(s3));
        var target = new CaptureIdentity("uid-twice", "default", "lost-stored", "web-0");
        using var agent = TestAgent.For(host, target);
        var (stored, sha) = await agent.UploadWholeAsync(200_000);

        using var again = await agent.OpenAsync();
        Assert.Equal(200_000, again.ResumeOffset);
        var confirmed = await again.FinishAsync(200_000, sha);
        Assert.Equal(stored.Uri, confirmed.Uri);
        Assert.Equal(sha, confirmed.Sha256);
    }

    [Fact]
    public async Task NewStreamOfTheSameAgentTakesOverAHalfDeadOneAndResumesFromTheDurableOffset()
    {
        await using var s3 = await S3rverFixture.StartAsync();
        await using var host = await OperatorHost.StartInProcessAsync(OperatorHost.S3Settings(s3));
        var target = new CaptureIdentity("uid-takeover", "default", "takeover", "web-0");
        using var agent = TestAgent.For(host, target);
        const long Total = 1 << 20;

        using var stale = await agent.OpenAsync();
        await stale.SendPatternAsync(0, 300_000);
        await stale.WaitForAckAsync(256 << 10, TimeSpan.FromSeconds(20));
        using var fresh = await agent.OpenAsync(); // the old connection was never closed
        var superseded = await stale.FailureAsync();
        Assert.Equal(StatusCode.Aborted, superseded.StatusCode);
        Assert.Contains("a newer stream of the same agent session took over", superseded.Status.Detail, StringComparison.Ordinal);

        Assert.Equal(256 << 10, fresh.ResumeOffset);
        await fresh.SendPatternAsync(fresh.ResumeOffset, Total);
        var stored = await fresh.FinishAsync(Total, Pattern.Sha256(Total));
        Assert.Equal(Pattern.Sha256(Total), Evidence.Sha256Of(s3.ObjectPath("captures/default/takeover/web-0.pcap")!));
        Assert.Equal(Total, stored.Size);
    }

    public static async Task<TargetUpload> WaitForAsync(IIngestStatus status, CaptureIdentity target, UploadPhase phase, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var upload = await status.GetAsync(target, CancellationToken.None);
            if (upload?.Phase == phase)
            {
                return upload;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{target.Pod} did not reach {phase} (now {upload?.Phase}: {upload?.Error})");
            }

            await Task.Delay(50);
        }
    }

    private static async Task WaitForMessageAsync(TestAgent.Upload upload, IngestMessage.BodyOneofCase kind)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!upload.Received.Any(m => m.BodyCase == kind))
        {
            Assert.True(DateTime.UtcNow < deadline, $"no {kind} message within 10s");
            await Task.Delay(20);
        }
    }
}
