using System.Collections.Concurrent;
using k8s;
using k8s.Models;
using KubeCapture.Contracts;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Provenance;
using KubeCapture.Testing.Kubernetes;
using Microsoft.Extensions.Logging.Abstractions;

namespace KubeCapture.Operator.Tests.Ingest;

/// <summary>
/// Which replica writes a target's upload, decided by its Lease on the real kube-apiserver: one
/// replica at a time, handed over when the holder lets go, taken over when it went silent for a
/// lease duration, and given up by a holder cut off from the API before anyone else may take it.
/// </summary>
public sealed class UploadOwnershipTests
{
    private static readonly CaptureIdentity Target = new("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "shop", "slow-checkout", "api-7d9f");

    [SkippableFact]
    public async Task A_second_replica_is_refused_naming_the_holder_while_it_renews_and_takes_the_target_as_soon_as_the_holder_lets_go()
    {
        var (ns, client) = await ServerAsync("kc-own");
        var a = Replica(client, ns, "replica-a", "10.0.0.1");
        var b = Replica(client, ns, "replica-b", "10.0.0.2");
        var holder = new RecordingOwner("session-a");

        var claim = await a.ClaimAsync(Target, holder, CancellationToken.None);
        // Refused again and again across more than a lease duration: the holder's renewals keep the Lease alive.
        var refusals = new List<UploadOwnedElsewhereException>();
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (DateTime.UtcNow < until)
        {
            refusals.Add(await Assert.ThrowsAsync<UploadOwnedElsewhereException>(() => b.ClaimAsync(Target, new RecordingOwner("session-b"), CancellationToken.None)));
            await Task.Delay(300);
        }

        Assert.All(refusals, r => Assert.Equal("replica-a", r.Holder));
        Assert.Contains("replica replica-a (10.0.0.1) holds the upload of capture shop/slow-checkout pod api-7d9f", refusals[0].Message, StringComparison.Ordinal);
        var lease = await client.CoordinationV1.ReadNamespacedLeaseAsync(UploadOwnership.LeaseNameOf(Target), ns);
        Assert.Equal("replica-a", lease.Spec.HolderIdentity);
        Assert.True(lease.Spec.RenewTime > lease.Spec.AcquireTime, "the holder renewed its Lease");
        Assert.Null(holder.LostBecause);

        await claim.DisposeAsync(); // the stream ended: the Lease is deleted
        await Assert.ThrowsAsync<k8s.Autorest.HttpOperationException>(() => client.CoordinationV1.ReadNamespacedLeaseAsync(UploadOwnership.LeaseNameOf(Target), ns));
        await using var taken = await b.ClaimAsync(Target, new RecordingOwner("session-b"), CancellationToken.None);
        Assert.Equal("replica-b", (await client.CoordinationV1.ReadNamespacedLeaseAsync(UploadOwnership.LeaseNameOf(Target), ns)).Spec.HolderIdentity);
    }

    [SkippableFact]
    public async Task The_Lease_of_a_replica_that_died_is_taken_over_only_after_this_replica_saw_it_unchanged_for_a_lease_duration_whatever_its_renewTime_says()
    {
        var (ns, client) = await ServerAsync("kc-own-dead");
        // Left by a replica that died holding it, with a renewTime far in the future (a clock ahead of ours): only silence counts.
        var name = UploadOwnership.LeaseNameOf(Target);
        await client.CoordinationV1.CreateNamespacedLeaseAsync(new V1Lease
        {
            Metadata = new V1ObjectMeta { Name = name, Labels = new Dictionary<string, string> { [UploadOwnership.UploadLabel] = "true" } },
            Spec = new V1LeaseSpec { HolderIdentity = "replica-dead", LeaseDurationSeconds = 3, RenewTime = DateTime.UtcNow.AddHours(1), AcquireTime = DateTime.UtcNow.AddHours(1), LeaseTransitions = 0 },
        }, ns);
        var b = Replica(client, ns, "replica-b", null);

        var first = DateTime.UtcNow;
        var refused = await Assert.ThrowsAsync<UploadOwnedElsewhereException>(() => b.ClaimAsync(Target, new RecordingOwner("s"), CancellationToken.None));
        Assert.Equal("replica-dead", refused.Holder);
        UploadClaim? claim = null;
        var attempts = 1;
        while (claim is null)
        {
            await Task.Delay(500);
            attempts++;
            try
            {
                claim = await b.ClaimAsync(Target, new RecordingOwner("s"), CancellationToken.None);
            }
            catch (UploadOwnedElsewhereException)
            {
                Assert.True(attempts < 100, "never taken over");
            }
        }

        await using (claim)
        {
            Assert.True(DateTime.UtcNow - first >= TimeSpan.FromSeconds(3), "taken over before a lease duration of silence");
            var lease = await client.CoordinationV1.ReadNamespacedLeaseAsync(name, ns);
            Assert.Equal(("replica-b", 1), (lease.Spec.HolderIdentity, lease.Spec.LeaseTransitions ?? 0));
        }
    }

    [SkippableFact]
    public async Task A_holder_cut_off_from_the_API_stops_writing_before_another_replica_can_take_the_target_and_ends_its_stream_once_it_sees_it_taken()
    {
        var (ns, client) = await ServerAsync("kc-own-cut");
        var partition = new ApiPartition();
        using var cutOff = await PartitionableClientAsync(partition);
        // A wide margin between the renew deadline and the lease duration (4 s), as the defaults have (5 s).
        var a = Replica(cutOff, ns, "replica-a", null, leaseSeconds: 6, deadlineSeconds: 2);
        var b = Replica(client, ns, "replica-b", null, leaseSeconds: 6, deadlineSeconds: 2);
        var events = new ConcurrentQueue<string>();
        var holder = new RecordingOwner("s", events);

        var claim = await a.ClaimAsync(Target, holder, CancellationToken.None);
        claim.WritableChanged += writable => events.Enqueue(writable ? "replica-a writes again" : "replica-a stopped writing");
        partition.Cut = true;
        UploadClaim? taken = null;
        while (taken is null)
        {
            try
            {
                taken = await b.ClaimAsync(Target, new RecordingOwner("s"), CancellationToken.None);
                events.Enqueue("replica-b took it");
            }
            catch (UploadOwnedElsewhereException)
            {
                await Task.Delay(200);
            }
        }

        await using (taken)
        {
            Assert.Equal(["replica-a stopped writing", "replica-b took it"], events.ToArray());
            Assert.False(claim.Writable);
            Assert.False(claim.WhenWritableAsync(CancellationToken.None).IsCompleted);
            Assert.Null(holder.LostBecause); // still partitioned: it cannot know yet

            partition.Cut = false; // healed: its next renewal finds replica-b's Lease
            await WaitUntil(() => holder.LostBecause is not null);
            Assert.Contains("replica replica-b holds its Lease", holder.LostBecause, StringComparison.Ordinal);
            Assert.Equal(["replica-a stopped writing", "replica-b took it", "replica-a lost it"], events.ToArray());
            await claim.DisposeAsync(); // a lost claim deletes nothing: the Lease is replica-b's
            Assert.Equal("replica-b", (await client.CoordinationV1.ReadNamespacedLeaseAsync(UploadOwnership.LeaseNameOf(Target), ns)).Spec.HolderIdentity);
        }
    }

    [SkippableFact]
    public async Task A_holder_cut_off_from_the_API_that_nobody_took_over_writes_again_once_it_renews_as_in_a_control_plane_outage()
    {
        var (ns, _) = await ServerAsync("kc-own-outage");
        var partition = new ApiPartition();
        using var cutOff = await PartitionableClientAsync(partition);
        var a = Replica(cutOff, ns, "replica-a", null, leaseSeconds: 3, deadlineSeconds: 2);
        var holder = new RecordingOwner("s");
        await using var claim = await a.ClaimAsync(Target, holder, CancellationToken.None);
        var paused = new TaskCompletionSource();
        claim.WritableChanged += writable =>
        {
            if (!writable)
            {
                paused.TrySetResult();
            }
        };

        partition.Cut = true;
        await paused.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var resumed = claim.WhenWritableAsync(CancellationToken.None);
        await Task.Delay(TimeSpan.FromSeconds(4)); // past the lease duration: no other replica asked for it
        Assert.False(resumed.IsCompleted);
        partition.Cut = false;

        await resumed.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(claim.Writable);
        Assert.Null(holder.LostBecause);
    }

    [SkippableFact]
    public async Task A_newer_stream_of_the_same_session_on_another_replica_makes_the_holder_hand_over_and_a_stop_reaches_the_holder_through_the_Lease()
    {
        var (ns, client) = await ServerAsync("kc-own-hand");
        var a = Replica(client, ns, "replica-a", null);
        var b = Replica(client, ns, "replica-b", null);
        var leader = Replica(client, ns, "replica-leader", null);
        var holder = new RecordingOwner("session-a");
        var claim = await a.ClaimAsync(Target, holder, CancellationToken.None);

        await leader.RequestStopAsync(Target.CaptureUid, "the capture was stopped", CancellationToken.None);
        await WaitUntil(() => holder.Stops.Count > 0);
        Assert.Equal(["the capture was stopped"], holder.Stops);

        // Another session is refused without disturbing the holder; the same session asks for the upload.
        await Assert.ThrowsAsync<UploadOwnedElsewhereException>(() => b.ClaimAsync(Target, new RecordingOwner("session-other"), CancellationToken.None));
        await Task.Delay(TimeSpan.FromSeconds(2));
        Assert.False(holder.Superseded);
        var asked = await Assert.ThrowsAsync<UploadOwnedElsewhereException>(() => b.ClaimAsync(Target, new RecordingOwner("session-a"), CancellationToken.None));
        Assert.Contains("it was asked to hand over", asked.Message, StringComparison.Ordinal);
        await WaitUntil(() => holder.Superseded);
        await claim.DisposeAsync();
        await using var taken = await b.ClaimAsync(Target, new RecordingOwner("session-a"), CancellationToken.None);
        var lease = await client.CoordinationV1.ReadNamespacedLeaseAsync(UploadOwnership.LeaseNameOf(Target), ns);
        Assert.Equal("replica-b", lease.Spec.HolderIdentity);
        Assert.Null(UploadOwnership.Annotation(lease, UploadOwnership.HandoverAnnotation));
    }

    /// <summary>
    /// Followers waiting on a replica for a stream to start look at the target's Lease every second
    /// (as CaptureDownloads does while nothing was sent): eight of them cost one read of the Lease per
    /// second between them, counted at kube-apiserver's door, not eight; a second target's follower
    /// gets a read of its own, and each sees the holder once one took the Lease.
    /// </summary>
    [SkippableFact]
    public async Task Followers_waiting_for_one_target_share_one_Lease_read_per_second_not_one_each()
    {
        var (ns, client) = await ServerAsync("kc-own-watch");
        var counted = new LeaseReads();
        var waiting = Replica(await PartitionableClientAsync(counted), ns, "replica-b", null);
        var other = Target with { Pod = "api-other" };
        await using var claim = await Replica(client, ns, "replica-a", null).ClaimAsync(Target, new RecordingOwner("session-a"), CancellationToken.None);
        const int Followers = 8;
        const int Periods = 4;
        var period = KubeCapture.Operator.Subresources.StreamRelay.PollPeriod;

        async Task<List<string?>> FollowAsync(CaptureIdentity target)
        {
            var seen = new List<string?>();
            for (var i = 0; i < Periods; i++)
            {
                await Task.Delay(period);
                seen.Add((await waiting.HolderAsync(target, period, CancellationToken.None))?.Identity);
            }

            return seen;
        }

        var followed = await Task.WhenAll(Enumerable.Range(0, Followers).Select(_ => FollowAsync(Target)).Append(FollowAsync(other)));

        Assert.All(followed[..Followers], seen => Assert.All(seen, holder => Assert.Equal("replica-a", holder)));
        Assert.All(followed[Followers], holder => Assert.Null(holder));
        var reads = counted.Reads(UploadOwnership.LeaseNameOf(Target));
        // One read per period, and one more where a period's read started just before some followers' turn came.
        Assert.InRange(reads, 1, 2 * Periods);
        Assert.InRange(counted.Reads(UploadOwnership.LeaseNameOf(other)), 1, 2 * Periods);
        Assert.True(reads < Followers * Periods / 2, $"{reads} reads for {Followers} followers over {Periods} periods");
    }

    /// <summary>
    /// A replica died holding a stream whose agent never came back: its upload Lease is left behind.
    /// The retention sweeper (any replica) deletes it once nobody renewed it for Storage:AbandonAfter,
    /// by its renewTime, and keeps the Lease a live replica renews, with the stream it owns.
    /// </summary>
    [SkippableFact]
    public async Task The_retention_sweeper_deletes_an_upload_Lease_left_unrenewed_for_AbandonAfter_and_keeps_one_a_replica_renews()
    {
        var (ns, client) = await ServerAsync("kc-own-left");
        var left = Target with { Pod = "api-left" };
        await client.CoordinationV1.CreateNamespacedLeaseAsync(new V1Lease
        {
            Metadata = new V1ObjectMeta { Name = UploadOwnership.LeaseNameOf(left), Labels = new Dictionary<string, string> { [UploadOwnership.UploadLabel] = "true", [UploadOwnership.CaptureUidLabel] = left.CaptureUid } },
            Spec = new V1LeaseSpec { HolderIdentity = "replica-dead", LeaseDurationSeconds = 15, RenewTime = DateTime.UtcNow.AddMinutes(-11), AcquireTime = DateTime.UtcNow.AddMinutes(-20), LeaseTransitions = 0 },
        }, ns);
        var a = Replica(client, ns, "replica-a", null);
        var owner = new RecordingOwner("session-a");
        await using var live = await a.ClaimAsync(Target, owner, CancellationToken.None);
        var root = Directory.CreateTempSubdirectory("kcI-leases-").FullName;
        var store = new KubeCapture.Operator.Storage.LocalArtifactStore(root, "captures");
        var options = Microsoft.Extensions.Options.Options.Create(new KubeCapture.Operator.Storage.StorageOptions { AbandonAfter = TimeSpan.FromMinutes(10) });
        var registry = new UploadRegistry(store, Microsoft.Extensions.Options.Options.Create(new IngestOptions()), options, NullLogger<UploadRegistry>.Instance, null, a);
        var sweeper = new RetentionSweeper(store, registry, options, NullLogger<RetentionSweeper>.Instance, null, Replica(client, ns, "replica-b", null));

        await sweeper.SweepAsync(DateTimeOffset.UtcNow, CancellationToken.None);

        var kept = (await client.CoordinationV1.ListNamespacedLeaseAsync(ns, labelSelector: $"{UploadOwnership.UploadLabel}=true")).Items;
        Assert.Equal([("replica-a", UploadOwnership.LeaseNameOf(Target))], kept.Select(l => (l.Spec.HolderIdentity, l.Metadata.Name)));
        Assert.Null(owner.LostBecause);
    }

    private static async Task<(string Namespace, IKubernetes Client)> ServerAsync(string prefix)
    {
        KubeApiServer.Require();
        var server = await KubeApiServer.SharedAsync();
        return (await server.CreateNamespaceAsync(prefix), server.AdminClient());
    }

    private static async Task<IKubernetes> PartitionableClientAsync(DelegatingHandler partition)
    {
        var server = await KubeApiServer.SharedAsync();
        return new k8s.Kubernetes(server.ClientConfiguration(server.AdminToken), partition);
    }

    private static UploadOwnership Replica(IKubernetes client, string ns, string identity, string? address, int leaseSeconds = 3, int deadlineSeconds = 2) =>
        new(client, new UploadOwnershipOptions(identity, ns, address, TimeSpan.FromSeconds(leaseSeconds), TimeSpan.FromSeconds(deadlineSeconds)), NullLogger<UploadOwnership>.Instance);

    private static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out");
            await Task.Delay(100);
        }
    }

    /// <summary>A stream owner that records what the claim told it.</summary>
    private sealed class RecordingOwner(string session, ConcurrentQueue<string>? events = null) : IStreamOwner
    {
        public AgentSessionRecord Session { get; } = AgentSessionRecord.Of(session.PadRight(32, '0'), null, DateTimeOffset.UtcNow);

        public List<string> Stops { get; } = [];

        public bool Superseded { get; private set; }

        public string? LostBecause { get; private set; }

        public void RequestStop(string reason)
        {
            lock (Stops)
            {
                Stops.Add(reason);
            }
        }

        public void RequestSnapshot(string requester, string? alert = null) => throw new InvalidOperationException("an upload's Lease never asks for a snapshot");

        public void Supersede() => Superseded = true;

        public void Lose(string reason)
        {
            LostBecause = reason;
            events?.Enqueue("replica-a lost it");
        }
    }

    /// <summary>Counts the GETs of each Lease that leave this replica for kube-apiserver.</summary>
    private sealed class LeaseReads : DelegatingHandler
    {
        private readonly ConcurrentDictionary<string, int> _reads = new();

        public int Reads(string lease) => _reads.GetValueOrDefault(lease);

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (request.Method == HttpMethod.Get && request.RequestUri!.AbsolutePath.Contains("/leases/", StringComparison.Ordinal))
            {
                _reads.AddOrUpdate(request.RequestUri.AbsolutePath[(request.RequestUri.AbsolutePath.LastIndexOf('/') + 1)..], 1, (_, n) => n + 1);
            }

            return base.SendAsync(request, cancellationToken);
        }
    }

    /// <summary>A network partition between one replica and kube-apiserver: every request fails while cut.</summary>
    private sealed class ApiPartition : DelegatingHandler
    {
        public volatile bool Cut;

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            Cut ? throw new HttpRequestException("partitioned from kube-apiserver") : base.SendAsync(request, cancellationToken);
    }
}
