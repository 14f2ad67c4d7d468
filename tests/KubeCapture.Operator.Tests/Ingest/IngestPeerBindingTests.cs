using System.Net;
using Grpc.Core;
using KubeCapture.Contracts;
using KubeCapture.Operator.Ingest;
using KubeCapture.Testing.S3;
using Microsoft.Extensions.DependencyInjection;

namespace KubeCapture.Operator.Tests.Ingest;

/// <summary>
/// The binding of an upload to its pod's addresses, at the protocol level: the "pod" is 127.0.0.1
/// and a forger with the same token and identity connects from 127.0.0.2 (another address of lo).
/// The reconciler's part (telling the addresses) is played through <see cref="IAgentAddresses"/>.
/// </summary>
public sealed class IngestPeerBindingTests
{
    private static readonly IPAddress Elsewhere = IPAddress.Parse("127.0.0.2");

    [Fact]
    public async Task ForgedStreamWithTheRightTokenFromAnotherAddressIsRefusedWhileTheRealUploadRunsUndisturbedAndIsCounted()
    {
        await using var ingest = await BoundIngest.StartAsync();
        var (s3, host, addresses) = (ingest.S3, ingest.Host, ingest.Addresses);
        var target = new CaptureIdentity("uid-forged", "payments", "forged", "api-0");
        addresses.Expect(target, new UploadTerms(["127.0.0.1"]));
        using var agent = TestAgent.For(host, target);
        using var forger = Forger(host, target);
        const long Total = 600_000;

        using var real = await agent.OpenAsync();
        await real.SendPatternAsync(0, 300_000);
        await real.WaitForAckAsync(256 << 10, TimeSpan.FromSeconds(20));
        var refused = await Assert.ThrowsAsync<RpcException>(() => forger.OpenAsync());
        await real.SendPatternAsync(300_000, Total);
        var stored = await real.FinishAsync(Total, Pattern.Sha256(Total));

        Assert.Equal(StatusCode.PermissionDenied, refused.StatusCode);
        Assert.Contains("pod api-0 refused: it comes from 127.0.0.2, but the pod's addresses are 127.0.0.1 (status.podIPs)", refused.Status.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain(real.Received, m => m.BodyCase == KubeCapture.Proto.V1.IngestMessage.BodyOneofCase.Stop);
        Assert.Equal(Pattern.Sha256(Total), stored.Sha256);
        Assert.Equal(Pattern.Sha256(Total), Evidence.Sha256Of(s3.ObjectPath("captures/payments/forged/api-0.pcap")!));
        var refusals = addresses.Refusals(target);
        Assert.Equal(1, refusals.Count);
        Assert.Equal(refused.Status.Detail, refusals.LastMessage);
    }

    [Fact]
    public async Task ForgedStreamAfterThePcapWasStoredIsRefusedAndTheStoredObjectStaysTheSame()
    {
        await using var ingest = await BoundIngest.StartAsync();
        var (s3, host, addresses) = (ingest.S3, ingest.Host, ingest.Addresses);
        var target = new CaptureIdentity("uid-after", "payments", "after-stored", "api-0");
        addresses.Expect(target, new UploadTerms(["127.0.0.1"]));
        using var agent = TestAgent.For(host, target);
        var (stored, sha) = await agent.UploadWholeAsync(200_000);
        var pcap = s3.ObjectPath("captures/payments/after-stored/api-0.pcap")!;

        using var forger = Forger(host, target);
        var refused = await Assert.ThrowsAsync<RpcException>(() => forger.OpenAsync());
        using var again = await agent.OpenAsync(); // the real agent, reconnecting after it missed Stored, is still confirmed
        var confirmed = await again.FinishAsync(200_000, sha);

        Assert.Equal(StatusCode.PermissionDenied, refused.StatusCode);
        Assert.Equal(sha, Evidence.Sha256Of(pcap));
        Assert.Equal((stored.Uri, sha), (confirmed.Uri, confirmed.Sha256));
        Assert.Equal(1, addresses.Refusals(target).Count);
    }

    [Fact]
    public async Task UploadBeforeTheReconcilerToldThePodsAddressesIsRetryableAndGoesThroughOnceTheyAreKnown()
    {
        await using var ingest = await BoundIngest.StartAsync();
        var (s3, host, addresses) = (ingest.S3, ingest.Host, ingest.Addresses);
        var target = new CaptureIdentity("uid-unknown", "payments", "unknown", "api-0");
        using var agent = TestAgent.For(host, target);

        var early = await Assert.ThrowsAsync<RpcException>(() => agent.OpenAsync());
        addresses.Expect(target, new UploadTerms(["127.0.0.1"]));
        var (stored, sha) = await agent.UploadWholeAsync(100_000);

        Assert.Equal(StatusCode.Unavailable, early.StatusCode); // the agent retries UNAVAILABLE; PERMISSION_DENIED is fatal
        Assert.Contains("the operator does not know the addresses of pod api-0 yet", early.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(sha, stored.Sha256);
        Assert.Equal(0, addresses.Refusals(target).Count);
    }

    [Fact]
    public async Task OnceTheTargetPodIsDeletedNoUploadIsAcceptedFromItsFormerAddressAndTheAttemptIsCounted()
    {
        await using var ingest = await BoundIngest.StartAsync();
        var (s3, host, addresses) = (ingest.S3, ingest.Host, ingest.Addresses);
        var target = new CaptureIdentity("uid-gone", "payments", "gone", "api-0");
        addresses.Expect(target, new UploadTerms(["127.0.0.1"]));
        addresses.Unbind(target); // the reconciler saw the pod deleted: its IP may go to another pod
        using var newcomer = TestAgent.For(host, target);

        var refused = await Assert.ThrowsAsync<RpcException>(() => newcomer.OpenAsync());

        Assert.Equal(StatusCode.PermissionDenied, refused.StatusCode);
        Assert.Contains("pod api-0 was deleted, and its address may belong to another pod now", refused.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(1, addresses.Refusals(target).Count);
        Assert.Null(s3.ObjectPath("captures/.ingest/payments/gone/api-0.json"));
    }

    [Fact]
    public async Task OnADualStackListenerAnIPv4MappedPeerMatchesThePodsIPv4Address()
    {
        await using var ingest = await BoundIngest.StartAsync("[::]");
        var (s3, host, addresses) = (ingest.S3, ingest.Host, ingest.Addresses);
        var target = new CaptureIdentity("uid-mapped", "payments", "mapped", "api-0");
        addresses.Expect(target, new UploadTerms(["127.0.0.1", "fd00::7"]));
        var url = new Uri($"https://127.0.0.1:{host.IngestPort}");
        var issuer = new CaptureTokenIssuer(OperatorHost.TokenSecret);
        using var agent = new TestAgent(url, target, issuer.Issue(target), caPem: host.IngestCaPem);
        using var forger = new TestAgent(url, target, issuer.Issue(target), Elsewhere, host.IngestCaPem);

        var (stored, sha) = await agent.UploadWholeAsync(100_000);
        var refused = await Assert.ThrowsAsync<RpcException>(() => forger.OpenAsync());

        Assert.Equal(sha, stored.Sha256);
        Assert.Equal(StatusCode.PermissionDenied, refused.StatusCode);
        Assert.Contains("it comes from 127.0.0.2, but the pod's addresses are 127.0.0.1, fd00::7", refused.Status.Detail, StringComparison.Ordinal);
    }

    private static TestAgent Forger(OperatorHost host, CaptureIdentity target) =>
        new(host.IngestUrl, target, new CaptureTokenIssuer(OperatorHost.TokenSecret).Issue(target), Elsewhere, host.IngestCaPem);
}
