using System.Net;
using System.Text;
using k8s.Models;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Custody;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Provenance;
using KubeCapture.Operator.Storage;
using KubeCapture.Operator.Tests.Ingest;
using KubeCapture.Testing.S3;
using Microsoft.Extensions.DependencyInjection;

namespace KubeCapture.Operator.Tests.Storage;

/// <summary>
/// Object Lock and lifecycle on Ceph RADOS Gateway, a production S3 that enforces them: a real
/// capture streamed through the real ingest, locked after its multipart upload completed (RGW
/// ignores lock headers on CreateMultipartUpload), then deletions tried by the operator and by a
/// bucket user with and without the governance bypass.
/// </summary>
[RequiresCephRgw]
[Collection(CephRgwCollection.Name)]
public sealed class ObjectLockTests
{
    [StorageFact]
    public async Task A_compliance_lock_refuses_deletion_by_the_operator_and_even_with_the_governance_bypass()
    {
        await using var rgw = await CephRgwFixture.StartAsync(objectLock: true);
        var (store, stored) = await CaptureAsync(rgw, "compliance", legalHold: false);

        Assert.Equal("compliance", stored.Retention!.Lock);
        Assert.Equal(stored.ExpiresAt, stored.Retention.RetainUntil);
        Assert.NotNull(stored.VersionId);
        Assert.Contains("<Mode>COMPLIANCE</Mode>", await SendAsync(rgw, HttpMethod.Get, PcapKey + "?retention=", HttpStatusCode.OK), StringComparison.Ordinal);
        Assert.Contains("<Mode>COMPLIANCE</Mode>", await SendAsync(rgw, HttpMethod.Get, ManifestKey + "?retention=", HttpStatusCode.OK), StringComparison.Ordinal);
        var refused = await Assert.ThrowsAsync<S3ErrorException>(() => store.DeleteStoredAsync(stored, CancellationToken.None));
        Assert.Equal("AccessDenied", refused.Code);
        await SendAsync(rgw, HttpMethod.Delete, $"{PcapKey}?versionId={stored.VersionId}", HttpStatusCode.Forbidden, bypassGovernance: true);
        Assert.NotNull(await rgw.ReadObjectAsync(PcapKey));
        var disposal = Assert.Single(await new EvidenceRetention(store, TimeProvider.System).DisposeAsync([Target], CancellationToken.None));
        Assert.False(disposal.Deleted);
        Assert.Equal($"kept: compliance lock until {stored.ExpiresAt!.Value.UtcDateTime:yyyy-MM-dd'T'HH:mm:ss'Z'}", disposal.Kept);
        Assert.NotNull(await rgw.ReadObjectAsync(PcapKey));
    }

    [StorageFact]
    public async Task A_governance_lock_refuses_deletion_unless_the_bypass_is_sent()
    {
        await using var rgw = await CephRgwFixture.StartAsync(objectLock: true);
        var (store, stored) = await CaptureAsync(rgw, "governance", legalHold: false);

        Assert.Contains("<Mode>GOVERNANCE</Mode>", await SendAsync(rgw, HttpMethod.Get, PcapKey + "?retention=", HttpStatusCode.OK), StringComparison.Ordinal);
        var refused = await Assert.ThrowsAsync<S3ErrorException>(() => store.DeleteStoredAsync(stored, CancellationToken.None));
        Assert.Equal("AccessDenied", refused.Code);
        await SendAsync(rgw, HttpMethod.Delete, $"{PcapKey}?versionId={stored.VersionId}", HttpStatusCode.Forbidden);
        Assert.NotNull(await rgw.ReadObjectAsync(PcapKey));

        await SendAsync(rgw, HttpMethod.Delete, $"{PcapKey}?versionId={stored.VersionId}", HttpStatusCode.NoContent, bypassGovernance: true);
        Assert.Null(await rgw.ReadObjectAsync(PcapKey));
    }

    [StorageFact]
    public async Task A_legal_hold_refuses_deletion_until_it_is_removed_and_then_the_operator_deletes_every_version()
    {
        await using var rgw = await CephRgwFixture.StartAsync(objectLock: true);
        var (store, stored) = await CaptureAsync(rgw, "none", legalHold: true);

        Assert.True(stored.Retention!.LegalHold);
        Assert.Contains("<Status>ON</Status>", await SendAsync(rgw, HttpMethod.Get, PcapKey + "?legal-hold=", HttpStatusCode.OK), StringComparison.Ordinal);
        var refused = await Assert.ThrowsAsync<S3ErrorException>(() => store.DeleteStoredAsync(stored, CancellationToken.None));
        Assert.Equal("AccessDenied", refused.Code);
        Assert.Equal("kept: on legal hold until the hold is removed in the bucket",
            Assert.Single(await new EvidenceRetention(store, TimeProvider.System).DisposeAsync([Target], CancellationToken.None)).Kept);

        const string off = "<LegalHold xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>OFF</Status></LegalHold>";
        await SendAsync(rgw, HttpMethod.Put, PcapKey + "?legal-hold=", HttpStatusCode.OK, body: off);
        await SendAsync(rgw, HttpMethod.Put, ManifestKey + "?legal-hold=", HttpStatusCode.OK, body: off);
        await store.DeleteStoredAsync(stored, CancellationToken.None);
        Assert.DoesNotContain($"<Key>{PcapKey}</Key>", await SendAsync(rgw, HttpMethod.Get, "?versions=", HttpStatusCode.OK), StringComparison.Ordinal);
        Assert.DoesNotContain($"<Key>{ManifestKey}</Key>", await SendAsync(rgw, HttpMethod.Get, "?versions=", HttpStatusCode.OK), StringComparison.Ordinal);
    }

    [StorageFact]
    public async Task A_bucket_without_Object_Lock_is_reported_by_the_preflight_and_one_with_it_passes()
    {
        await using var plain = await CephRgwFixture.StartAsync();
        await using var locked = await CephRgwFixture.StartAsync(objectLock: true);

        using var plainStore = IngestStorageTests.StoreOf(plain);
        using var lockedStore = IngestStorageTests.StoreOf(locked);
        Assert.StartsWith($"bucket {plain.Bucket} has no Object Lock", await plainStore.CheckObjectLockAsync(CancellationToken.None), StringComparison.Ordinal);
        Assert.Null(await lockedStore.CheckObjectLockAsync(CancellationToken.None));
    }

    [StorageFact]
    public async Task The_lifecycle_rule_the_operator_installs_for_its_prefix_really_expires_a_stored_capture()
    {
        // rgw lc debug interval = 10 (CephRgwFixture): a lifecycle "day" is 10 seconds.
        await using var rgw = await CephRgwFixture.StartAsync();
        await SendAsync(rgw, HttpMethod.Put, "?lifecycle=", HttpStatusCode.OK, body:
            "<LifecycleConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Rule><ID>someone-elses</ID><Filter><Prefix>other/</Prefix></Filter><Status>Enabled</Status><Expiration><Days>30</Days></Expiration></Rule></LifecycleConfiguration>");
        var (store, _) = await CaptureAsync(rgw, "none", legalHold: false, new Dictionary<string, string> { ["Storage:S3:LifecycleExpirationDays"] = "1" });

        var lifecycle = await SendAsync(rgw, HttpMethod.Get, "?lifecycle=", HttpStatusCode.OK);
        Assert.Contains($"<ID>{store.LifecycleRuleId}</ID>", lifecycle, StringComparison.Ordinal);
        Assert.Contains("<ID>someone-elses</ID>", lifecycle, StringComparison.Ordinal);
        Assert.Contains("is in place", await store.EnsureLifecycleAsync(1, CancellationToken.None), StringComparison.Ordinal);
        Assert.NotNull(await rgw.ReadObjectAsync(PcapKey));
        var stored = DateTime.UtcNow;
        var deadline = DateTime.UtcNow.AddSeconds(150);
        while (await rgw.ReadObjectAsync(PcapKey) is not null)
        {
            Assert.True(DateTime.UtcNow < deadline, $"{PcapKey} still exists 150 s after its lifecycle day of 10 s");
            await Task.Delay(2000);
        }

        Assert.Null(await rgw.ReadObjectAsync(ManifestKey));
        Assert.True(DateTime.UtcNow - stored >= TimeSpan.FromSeconds(2), "expired by the lifecycle run, not at once");
    }

    [StorageFact]
    public async Task A_stream_that_outlives_its_PacketCapture_is_stored_with_the_captures_lock_and_requester()
    {
        await using var rgw = await CephRgwFixture.StartAsync(objectLock: true);
        await using var host = await OperatorHost.StartInProcessAsync(OperatorHost.S3Settings(rgw, 5 << 20));
        var custody = host.Services.GetRequiredService<ICustodyWitness>();
        var capture = Capture("governance", legalHold: false);
        capture.Metadata.Annotations = new Dictionary<string, string>(KubeCapture.Operator.Provenance.RequesterStamp.Annotations(new CaptureRequester { Username = "alice", Uid = "alice-uid", Groups = ["forensics"] }));
        custody.Witness(capture, Pod, "kubecapture-x");
        await using var traffic = new LoopbackTraffic();
        await using var agent = await AgentRun.StartAsync(host, Target, traffic.Filter, null, "-c", "40", "--retention", "2m");
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (await rgw.ReadObjectAsync("captures/.ingest/evidence/locked/db-0.json") is null)
        {
            Assert.True(DateTime.UtcNow < deadline, "the agent never opened its upload: " + agent.Output);
            await traffic.SendAsync(1 << 10, pause: TimeSpan.FromMilliseconds(5));
        }

        custody.Forget(Target.CaptureUid); // the PacketCapture is gone (deleted without waiting: break-glass)
        await traffic.SendAsync(64 << 10, pause: TimeSpan.FromMilliseconds(5));
        Assert.True(await agent.WaitForExitAsync(TimeSpan.FromSeconds(60)) == 0, agent.Output);
        var stored = await IngestStorageTests.StoreOf(rgw).FindStoredAsync(Target, CancellationToken.None) ?? throw new InvalidOperationException("nothing stored");

        Assert.Equal(("governance", stored.ExpiresAt), (stored.Retention!.Lock, stored.Retention.RetainUntil));
        Assert.Equal(("alice", "legal request 12"), (stored.Requester?.Username, stored.Reason));
        Assert.Contains("<Mode>GOVERNANCE</Mode>", await SendAsync(rgw, HttpMethod.Get, PcapKey + "?retention=", HttpStatusCode.OK), StringComparison.Ordinal);
    }

    private static readonly V1Pod Pod = new() { Metadata = new V1ObjectMeta { Name = "db-0", Uid = "pod-uid-db-0" }, Status = new V1PodStatus { PodIPs = [new V1PodIP { Ip = "127.0.0.1" }] } };

    private static PacketCapture Capture(string lockMode, bool legalHold) => new()
    {
        Metadata = new V1ObjectMeta { Name = Target.CaptureName, NamespaceProperty = Target.Namespace, Uid = Target.CaptureUid },
        Spec = new PacketCaptureSpec { Reason = "legal request 12", Duration = "60s", Retention = new CaptureRetention { Ttl = "2m", Lock = lockMode, LegalHold = legalHold } },
    };

    private const string PcapKey = "captures/evidence/locked/db-0.pcap";
    private const string ManifestKey = "captures/evidence/locked/db-0.manifest.json";
    private static readonly CaptureIdentity Target = new("uid-locked-1", "evidence", "locked", "db-0");

    /// <summary>A real capture through the real ingest, with the reconciler's knowledge of the capture (its retention) given as the reconciler gives it.</summary>
    private static async Task<(S3ArtifactStore Store, StoredCaptureManifest Stored)> CaptureAsync(CephRgwFixture rgw, string lockMode, bool legalHold, Dictionary<string, string>? extra = null)
    {
        var settings = OperatorHost.S3Settings(rgw, 5 << 20);
        foreach (var (key, value) in extra ?? [])
        {
            settings[key] = value;
        }

        await using var host = await OperatorHost.StartInProcessAsync(settings);
        host.Services.GetRequiredService<ICustodyWitness>().Witness(Capture(lockMode, legalHold), Pod, "kubecapture-x");
        await using var traffic = new LoopbackTraffic();
        await using var agent = await AgentRun.StartAsync(host, Target, traffic.Filter, null, "-c", "5", "--retention", "2m");
        await traffic.SendAsync(16 << 10, pause: TimeSpan.FromMilliseconds(5));
        Assert.True(await agent.WaitForExitAsync(TimeSpan.FromSeconds(60)) == 0, agent.Output);
        var store = IngestStorageTests.StoreOf(rgw);
        return (store, await store.FindStoredAsync(Target, CancellationToken.None) ?? throw new InvalidOperationException("nothing stored"));
    }

    /// <summary>A signed request as any bucket user with the credentials would send it; returns the body, asserting the status.</summary>
    private static async Task<string> SendAsync(CephRgwFixture rgw, HttpMethod method, string pathAndQuery, HttpStatusCode expected, bool bypassGovernance = false, string? body = null)
    {
        using var http = new HttpClient();
        var payload = body is null ? [] : Encoding.UTF8.GetBytes(body);
        using var request = new HttpRequestMessage(method, $"{rgw.Endpoint}/{rgw.Bucket}/{pathAndQuery.TrimStart('/')}".Replace($"{rgw.Bucket}/?", $"{rgw.Bucket}?", StringComparison.Ordinal));
        if (body is not null)
        {
            request.Content = new ByteArrayContent(payload);
            request.Content.Headers.TryAddWithoutValidation("Content-MD5", Convert.ToBase64String(System.Security.Cryptography.MD5.HashData(payload)));
        }

        if (bypassGovernance)
        {
            request.Headers.TryAddWithoutValidation("x-amz-bypass-governance-retention", "true");
        }

        new S3Signer("us-east-1", CephRgwFixture.AccessKey, CephRgwFixture.SecretKey).Sign(request, payload, DateTime.UtcNow);
        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"{method} {pathAndQuery}: {(int)response.StatusCode} {text}, expected {(int)expected}");
        return text;
    }
}
