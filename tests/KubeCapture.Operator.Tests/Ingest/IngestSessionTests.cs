using Grpc.Core;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Custody;
using KubeCapture.Operator.Custody;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Provenance;
using KubeCapture.Operator.Storage;
using KubeCapture.Testing.S3;
using Microsoft.Extensions.DependencyInjection;

namespace KubeCapture.Operator.Tests.Ingest;

/// <summary>
/// Who may write a target's pcap once its upload has started: only the agent session that opened it
/// (the random session ID only that agent process knows), in this process's memory and, after a
/// restart, from the checkpoint and the stored manifest. A second session with the right token, from
/// the pod's own address (someone who can run code in the pod) is refused; it never takes over.
/// And the capture's own terms (maxBytes, retention, ended targets) hold whatever the agent claims.
/// </summary>
public sealed class IngestSessionTests
{
    [Fact]
    public async Task A_second_session_with_the_right_token_is_refused_and_the_holders_stream_goes_on_to_be_stored()
    {
        await using var s3 = await S3rverFixture.StartAsync();
        await using var host = await OperatorHost.StartInProcessAsync(OperatorHost.S3Settings(s3));
        var target = new CaptureIdentity("uid-held", "payments", "held", "api-0");
        using var agent = TestAgent.For(host, target);
        using var intruder = TestAgent.For(host, target); // the same token: read where the agent reads it
        const long Total = 600_000;

        using var real = await agent.OpenAsync();
        await real.SendPatternAsync(0, 300_000);
        await real.WaitForAckAsync(256 << 10, TimeSpan.FromSeconds(20));
        var refused = await Assert.ThrowsAsync<RpcException>(() => intruder.OpenAsync());
        await real.SendPatternAsync(300_000, Total);
        var stored = await real.FinishAsync(Total, Pattern.Sha256(Total));

        Assert.Equal(StatusCode.AlreadyExists, refused.StatusCode);
        Assert.Contains("another agent session holds this target's upload", refused.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(Pattern.Sha256(Total), stored.Sha256);
        var manifest = StorageJsonContext.ReadManifest(File.ReadAllBytes(s3.ObjectPath("captures/payments/held/api-0.manifest.json")!));
        Assert.Equal(AgentSessionRecord.HashOf(agent.SessionId), manifest.AgentSession!.Sha256);
        Assert.Equal("127.0.0.1", manifest.AgentSession.Address);
        Assert.DoesNotContain(agent.SessionId, File.ReadAllText(s3.ObjectPath("captures/payments/held/api-0.manifest.json")!), StringComparison.Ordinal);
    }

    [Fact]
    public async Task After_an_operator_restart_the_checkpoint_names_the_holder_another_session_is_refused_and_the_holder_resumes()
    {
        await using var s3 = await S3rverFixture.StartAsync();
        var target = new CaptureIdentity("uid-restart", "payments", "restart", "api-0");
        const long Total = 1 << 20;
        string holderSession;
        await using (var before = await OperatorHost.StartInProcessAsync(OperatorHost.S3Settings(s3)))
        {
            using var agent = TestAgent.For(before, target);
            holderSession = agent.SessionId;
            using var upload = await agent.OpenAsync();
            await upload.SendPatternAsync(0, 300_000);
            await upload.WaitForAckAsync(256 << 10, TimeSpan.FromSeconds(20));
        }

        await using var after = await OperatorHost.StartInProcessAsync(OperatorHost.S3Settings(s3));
        using var intruder = TestAgent.For(after, target); // first through the door of the new process
        var refused = await Assert.ThrowsAsync<RpcException>(() => intruder.OpenAsync());
        using var holder = TestAgent.For(after, target);
        holder.SessionId = holderSession;
        using var resumed = await holder.OpenAsync();
        await resumed.SendPatternAsync(resumed.ResumeOffset, Total);
        var stored = await resumed.FinishAsync(Total, Pattern.Sha256(Total));

        Assert.Equal(StatusCode.AlreadyExists, refused.StatusCode);
        Assert.Equal(256 << 10, resumed.ResumeOffset);
        Assert.Equal(Pattern.Sha256(Total), Evidence.Sha256Of(s3.ObjectPath("captures/payments/restart/api-0.pcap")!));
        Assert.Equal(Total, stored.Size);
    }

    [Fact]
    public async Task Once_stored_only_the_session_that_uploaded_it_is_confirmed_also_after_a_restart()
    {
        await using var s3 = await S3rverFixture.StartAsync();
        var target = new CaptureIdentity("uid-stored", "payments", "stored", "api-0");
        var (agentSession, sha) = ("", "");
        await using (var before = await OperatorHost.StartInProcessAsync(OperatorHost.S3Settings(s3)))
        {
            using var agent = TestAgent.For(before, target);
            agentSession = agent.SessionId;
            (_, sha) = await agent.UploadWholeAsync(200_000);
            using var intruder = TestAgent.For(before, target);
            Assert.Equal(StatusCode.AlreadyExists, (await Assert.ThrowsAsync<RpcException>(() => intruder.OpenAsync())).StatusCode);
        }

        await using var after = await OperatorHost.StartInProcessAsync(OperatorHost.S3Settings(s3));
        using var lateIntruder = TestAgent.For(after, target);
        var refused = await Assert.ThrowsAsync<RpcException>(() => lateIntruder.OpenAsync());
        using var again = TestAgent.For(after, target);
        again.SessionId = agentSession;
        using var reconnect = await again.OpenAsync();
        var confirmed = await reconnect.FinishAsync(200_000, sha);

        Assert.Equal(StatusCode.AlreadyExists, refused.StatusCode);
        Assert.Equal(sha, confirmed.Sha256);
    }

    [Fact]
    public async Task The_pcap_is_kept_for_the_captures_retention_and_no_byte_past_its_maxBytes_is_taken_whatever_the_agent_claims()
    {
        await using var ingest = await BoundIngest.StartAsync();
        var kept = new CaptureIdentity("uid-ttl", "payments", "century", "api-0");
        var big = new CaptureIdentity("uid-big", "payments", "too-big", "api-0");
        ingest.Addresses.Expect(kept, new UploadTerms(["127.0.0.1"], MaxBytes: 1 << 20, Retention: TimeSpan.FromHours(1)));
        ingest.Addresses.Expect(big, new UploadTerms(["127.0.0.1"], MaxBytes: 100_000, Retention: TimeSpan.FromHours(1)));
        using var centuryAgent = TestAgent.For(ingest.Host, kept);
        centuryAgent.RetentionTtlSeconds = (long)TimeSpan.FromHours(876_000).TotalSeconds; // spec.retention.ttl: 876000h, as the agent claims it
        using var greedyAgent = TestAgent.For(ingest.Host, big);

        var opened = DateTimeOffset.UtcNow;
        var (stored, _) = await centuryAgent.UploadWholeAsync(150_000);
        using var greedy = await greedyAgent.OpenAsync();
        await greedy.SendPatternAsync(0, 60 * 1024);
        await greedy.SendPatternAsync(60 * 1024, 150_000); // the second chunk crosses 100,000 bytes
        var cut = await greedy.FailureAsync();

        var expiresAt = DateTimeOffset.Parse(stored.ExpiresAt, System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(expiresAt, opened.AddHours(1).AddMinutes(-1), DateTimeOffset.UtcNow.AddHours(1).AddMinutes(1));
        Assert.Equal(StatusCode.InvalidArgument, cut.StatusCode);
        Assert.Contains("past the capture's maxBytes of 100000 bytes", cut.Status.Detail, StringComparison.Ordinal);
        var checkpoint = await ingest.Host.Services.GetRequiredService<IArtifactStore>().LoadCheckpointAsync(big, CancellationToken.None);
        Assert.True(checkpoint!.Offset <= 100_000, $"{checkpoint.Offset} bytes stored");
        Assert.Null(ingest.S3.ObjectPath("captures/payments/too-big/api-0.pcap"));
    }

    [Fact]
    public async Task A_snapshot_is_taken_up_to_twice_its_recordings_ring_plus_the_header_and_no_byte_past_it_whatever_the_capture_allows()
    {
        await using var ingest = await BoundIngest.StartAsync();
        const long ring = 64 << 10;
        var recording = new CaptureIdentity("uid-rec", "payments", "recorder", "api-0");
        ingest.Addresses.Expect(recording, new UploadTerms(["127.0.0.1"], MaxBytes: 1 << 20, Retention: TimeSpan.FromHours(1), MaxSnapshots: 3, RingBytes: ring));
        var limit = KubeCapture.Contracts.Recorder.RecorderLimits.SnapshotMaxBytes(ring);
        using var greedyAgent = TestAgent.For(ingest.Host, recording);
        greedyAgent.SnapshotIndex = 2;

        using var greedy = await greedyAgent.OpenAsync();
        await greedy.SendPatternAsync(0, limit); // the most it may hold: taken
        await greedy.SendPatternAsync(limit, limit + 1); // one byte more, well within spec.maxBytes
        var cut = await greedy.FailureAsync();

        Assert.Equal(StatusCode.InvalidArgument, cut.StatusCode);
        Assert.Contains($"the pcap would grow to {limit + 1} bytes, past the most a snapshot may hold, {limit} bytes (twice the recording's ring, spec.recorder.maxBytes, plus the pcap header)",
            cut.Status.Detail, StringComparison.Ordinal);
        var checkpoint = await ingest.Host.Services.GetRequiredService<IArtifactStore>().LoadCheckpointAsync(recording with { Snapshot = 2 }, CancellationToken.None);
        Assert.True(checkpoint!.Offset <= limit, $"{checkpoint.Offset} bytes stored");
        Assert.Null(ingest.S3.ObjectPath("captures/payments/recorder/api-0_snapshot-2.pcap"));
    }

    [Fact]
    public async Task A_target_told_ended_accepts_no_upload_and_the_attempt_is_counted()
    {
        await using var ingest = await BoundIngest.StartAsync();
        var target = new CaptureIdentity("uid-ended", "payments", "ended", "api-0");
        ingest.Addresses.Expect(target, new UploadTerms(["127.0.0.1"]));
        ingest.Addresses.Close(target, "Failed: AgentCrashed");
        using var late = TestAgent.For(ingest.Host, target);

        var refused = await Assert.ThrowsAsync<RpcException>(() => late.OpenAsync());

        Assert.Equal(StatusCode.PermissionDenied, refused.StatusCode);
        Assert.Contains("the capture of pod api-0 has ended (Failed: AgentCrashed): no upload is accepted for it any more", refused.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(1, ingest.Addresses.Refusals(target).Count);
        Assert.Null(ingest.S3.ObjectPath("captures/.ingest/payments/ended/api-0.json"));
    }

    [Fact]
    public async Task A_stored_pcap_found_contested_gets_a_manifest_signed_again_that_says_so()
    {
        await using var ingest = await BoundIngest.StartAsync();
        var target = new CaptureIdentity("uid-contest", "payments", "contest", "api-0");
        ingest.Addresses.Expect(target, new UploadTerms(["127.0.0.1"]));
        using var forger = TestAgent.For(ingest.Host, target);
        var (stored, sha) = await forger.UploadWholeAsync(100_000);
        var manifestPath = ingest.S3.ObjectPath("captures/payments/contest/api-0.manifest.json")!;
        Assert.Null(StorageJsonContext.ReadManifest(File.ReadAllBytes(manifestPath)).Contested);

        ingest.Status.MarkContested(target, "the capture agent was refused: another agent session holds the target's upload");
        var deadline = DateTime.UtcNow.AddSeconds(30);
        StoredCaptureManifest amended;
        while ((amended = StorageJsonContext.ReadManifest(File.ReadAllBytes(manifestPath))).Contested is null)
        {
            Assert.True(DateTime.UtcNow < deadline, "the stored manifest was never amended");
            await Task.Delay(50);
        }

        Assert.Contains("another agent session holds", amended.Contested!.Message, StringComparison.Ordinal);
        Assert.Equal((stored.Size, sha), (amended.Size, amended.Sha256));
        var key = await ingest.Host.Services.GetRequiredService<ManifestSigner>().KeyAsync(CancellationToken.None); // the signer's own: not disposed here
        var verdict = CustodyVerifier.Verify(ingest.S3.ObjectPath("captures/payments/contest/api-0.pcap")!, File.ReadAllBytes(manifestPath), key);
        Assert.Empty(verdict.Problems);
        Assert.Contains("another agent session holds", verdict.Contested, StringComparison.Ordinal);
    }
}
