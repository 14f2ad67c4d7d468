using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using k8s;
using k8s.Autorest;
using k8s.Models;
using KubeCapture.Contracts;

namespace KubeCapture.Operator.Ingest;

/// <summary>
/// Which operator replica writes a target's upload: the one holding the target's
/// coordination.k8s.io Lease (<see cref="LeaseNameOf"/>, in the operator's namespace). A stream takes
/// it at Open (one read and one write), a background loop renews it every third of its duration (no
/// request per chunk) and it is deleted when the stream ends. A replica that gets a stream for a target
/// another live replica holds refuses it as retryable (UNAVAILABLE, naming the holder); the agent's
/// retry takes it over once the holder let go or its Lease expired.
///
/// Expiry is judged as leader election does, by this replica's own clock: a Lease is expired once
/// this replica has seen the same version of it for a whole lease duration, never by comparing the
/// holder's renewTime with this clock. Only the clocks' rates must agree, not their times. The holder
/// ends its stream once it could not renew for <see cref="UploadOwnershipOptions.RenewDeadline"/>
/// after its last successful renewal began, which is before any other replica can find the Lease
/// expired (renew deadline &lt; lease duration): two replicas never write one target at once.
/// </summary>
public sealed class UploadOwnership(IKubernetes kubernetes, UploadOwnershipOptions options, ILogger<UploadOwnership> logger)
{
    public const string UploadLabel = "kubecapture.io/upload";
    public const string CaptureUidLabel = "kubecapture.io/capture-uid";
    public const string TargetAnnotation = "kubecapture.io/target";
    public const string SessionAnnotation = "kubecapture.io/agent-session";
    public const string AddressAnnotation = "kubecapture.io/holder-address";
    public const string HandoverAnnotation = "kubecapture.io/handover";
    public const string StopAnnotation = "kubecapture.io/stop";
    public const string ProgressAnnotation = "kubecapture.io/progress";
    public const string RelayAnnotation = "kubecapture.io/relay-url";
    public const string RecorderAnnotation = "kubecapture.io/recorder";

    private readonly ConcurrentDictionary<string, (string? Version, long SeenAt)> _observed = new();
    private readonly Dictionary<string, (Task<V1Lease?> Read, long StartedAt)> _reads = [];

    public UploadOwnershipOptions Options => options;

    /// <summary>The Lease of one target's upload: a hash of the capture's uid and the pod (and the snapshot's index), so that any replica finds it.</summary>
    public static string LeaseNameOf(CaptureIdentity target) =>
        "kubecapture-upload-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(target.Snapshot == 0 ? $"{target.CaptureUid}/{target.Pod}" : $"{target.CaptureUid}/{target.Pod}/snapshot-{target.Snapshot}")))[..40];

    /// <summary>
    /// Takes the target's Lease for <paramref name="owner"/>'s stream (null: for a moment, to abort an
    /// abandoned upload), or throws <see cref="UploadOwnedElsewhereException"/> when another live
    /// replica holds it. A newer stream of the session the holder streams for asks the holder to hand
    /// over (its stream ends at its next renewal; the agent's retry then lands).
    /// </summary>
    public async Task<UploadClaim> ClaimAsync(CaptureIdentity target, IStreamOwner? owner, CancellationToken cancellationToken)
    {
        var name = LeaseNameOf(target);
        for (var attempt = 1; ; attempt++)
        {
            var started = Stopwatch.GetTimestamp();
            var lease = await ReadAsync(name, cancellationToken);
            try
            {
                if (lease is null)
                {
                    var created = await kubernetes.CoordinationV1.CreateNamespacedLeaseAsync(Held(NewLease(name, target), owner, transition: false), options.Namespace, cancellationToken: cancellationToken);
                    return Claimed(created, target, owner, started);
                }

                var holder = lease.Spec?.HolderIdentity;
                if (string.IsNullOrEmpty(holder) || holder == options.Identity || Expired(name, lease))
                {
                    if (!string.IsNullOrEmpty(holder) && holder != options.Identity)
                    {
                        logger.LogWarning("{Namespace}/{Capture} pod {Pod}: replica {Holder} did not renew its Lease {Lease} for {Duration} s: {Identity} takes the upload over",
                            target.Namespace, target.CaptureName, target.Pod, holder, name, lease.Spec!.LeaseDurationSeconds, options.Identity);
                    }

                    var taken = await kubernetes.CoordinationV1.ReplaceNamespacedLeaseAsync(Held(lease, owner, transition: holder != options.Identity), name, options.Namespace, cancellationToken: cancellationToken);
                    return Claimed(taken, target, owner, started);
                }

                var sameSession = owner is not null && Annotation(lease, SessionAnnotation) == owner.Session.Sha256;
                var address = Annotation(lease, AddressAnnotation);
                if (sameSession && Annotation(lease, HandoverAnnotation) != owner!.Session.Sha256)
                {
                    lease.Metadata.Annotations = new Dictionary<string, string>(lease.Metadata.Annotations ?? new Dictionary<string, string>()) { [HandoverAnnotation] = owner.Session.Sha256 };
                    lease = await kubernetes.CoordinationV1.ReplaceNamespacedLeaseAsync(lease, name, options.Namespace, cancellationToken: cancellationToken);
                    _observed[name] = (lease.Metadata.ResourceVersion, Stopwatch.GetTimestamp()); // its own write: the holder's silence counts from here
                }

                throw new UploadOwnedElsewhereException(target, holder, address, sameSession, Seconds(lease));
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict && attempt < 5)
            {
                // Another replica wrote the Lease between the read and the write: read it again.
            }
        }
    }

    /// <summary>
    /// The replica holding the target's Lease now, with the URL its live stream is relayed from
    /// (<see cref="RelayAnnotation"/>), or null when none holds it (no stream yet, or between two).
    /// </summary>
    public Task<StreamHolder?> HolderAsync(CaptureIdentity target, CancellationToken cancellationToken) => HolderAsync(target, TimeSpan.Zero, cancellationToken);

    /// <summary>
    /// The holder as read from the API at most <paramref name="maxAge"/> ago, or by a read in flight:
    /// the followers of one target waiting on this replica, each looking every second, share one read
    /// per second between them rather than one each.
    /// </summary>
    public async Task<StreamHolder?> HolderAsync(CaptureIdentity target, TimeSpan maxAge, CancellationToken cancellationToken)
    {
        var lease = await SharedReadAsync(LeaseNameOf(target), maxAge).WaitAsync(cancellationToken);
        return lease?.Spec?.HolderIdentity is { Length: > 0 } holder ? new StreamHolder(holder, Annotation(lease, RelayAnnotation), lease.Metadata.ResourceVersion) : null;
    }

    /// <summary>The read of Lease <paramref name="name"/> started less than <paramref name="maxAge"/> ago or still in flight, else a new one (not cancelled by any one caller).</summary>
    private Task<V1Lease?> SharedReadAsync(string name, TimeSpan maxAge)
    {
        var now = Stopwatch.GetTimestamp();
        lock (_reads)
        {
            if (_reads.TryGetValue(name, out var last) && (!last.Read.IsCompleted || Stopwatch.GetElapsedTime(last.StartedAt, now) < maxAge))
            {
                return last.Read;
            }

            if (_reads.Count >= 256)
            {
                // Targets no longer followed: forget their reads.
                foreach (var stale in _reads.Where(r => r.Value.Read.IsCompleted && Stopwatch.GetElapsedTime(r.Value.StartedAt, now) >= maxAge).Select(r => r.Key).ToList())
                {
                    _reads.Remove(stale);
                }
            }

            var read = ReadAsync(name, CancellationToken.None);
            _reads[name] = (read, now);
            return read;
        }
    }

    /// <summary>
    /// True when a replica holds the target's Lease and renewed it within <paramref name="window"/> of
    /// <paramref name="now"/> by its renewTime (for the retention sweeper, whose window of minutes makes clock skew moot).
    /// </summary>
    public async Task<bool> RenewedWithinAsync(CaptureIdentity target, DateTimeOffset now, TimeSpan window, CancellationToken cancellationToken)
    {
        var lease = await ReadAsync(LeaseNameOf(target), cancellationToken);
        return lease?.Spec?.HolderIdentity is { Length: > 0 } && lease.Spec.RenewTime is { } renewed
            && new DateTimeOffset(DateTime.SpecifyKind(renewed, DateTimeKind.Utc)) + window > now;
    }

    /// <summary>The progress the replica holding the target's Lease last reported, or null when none holds it or it has reported nothing yet.</summary>
    public async Task<UploadProgress?> ProgressAsync(CaptureIdentity target, CancellationToken cancellationToken)
    {
        var lease = await ReadAsync(LeaseNameOf(target), cancellationToken);
        return lease?.Spec?.HolderIdentity is { Length: > 0 }
            ? UploadProgress.Parse(Annotation(lease, ProgressAnnotation)) is { } progress ? progress with { Recorder = RecorderOf(Annotation(lease, RecorderAnnotation)) } : null
            : null;
    }

    /// <summary>
    /// The capture is stopped: every Lease of its targets says so, and each holder tells its agent at
    /// its next renewal (a replica that takes a target over later reads it too). Best effort, logged.
    /// </summary>
    public async Task RequestStopAsync(string captureUid, string reason, CancellationToken cancellationToken)
    {
        try
        {
            var leases = await kubernetes.CoordinationV1.ListNamespacedLeaseAsync(options.Namespace, labelSelector: $"{UploadLabel}=true,{CaptureUidLabel}={captureUid}", cancellationToken: cancellationToken);
            foreach (var lease in leases.Items.Where(l => l.Metadata.Annotations?.ContainsKey(StopAnnotation) != true))
            {
                lease.Metadata.Annotations = new Dictionary<string, string>(lease.Metadata.Annotations ?? new Dictionary<string, string>()) { [StopAnnotation] = reason };
                await kubernetes.CoordinationV1.ReplaceNamespacedLeaseAsync(lease, lease.Metadata.Name, options.Namespace, cancellationToken: cancellationToken);
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            logger.LogWarning("could not tell the replicas streaming capture {Uid} to stop ({Error}); the next reconcile tells them again", captureUid, e.Message);
        }
    }

    /// <summary>
    /// Deletes every upload Lease whose holder has not renewed it for <paramref name="silentFor"/> by its
    /// renewTime (minutes: the holders' clocks need not agree closely), the version read as precondition
    /// (one renewed meanwhile stays): left by a replica that died holding a stream whose agent never came
    /// back (its capture ended, or the Lease would have been taken over). Returns how many it deleted.
    /// </summary>
    public async Task<int> DeleteSilentAsync(DateTimeOffset now, TimeSpan silentFor, CancellationToken cancellationToken)
    {
        var leases = await kubernetes.CoordinationV1.ListNamespacedLeaseAsync(options.Namespace, labelSelector: $"{UploadLabel}=true", cancellationToken: cancellationToken);
        var deleted = 0;
        foreach (var lease in leases.Items)
        {
            var renewed = lease.Spec?.RenewTime ?? lease.Metadata.CreationTimestamp;
            if (renewed is not { } at || new DateTimeOffset(DateTime.SpecifyKind(at, DateTimeKind.Utc)) + silentFor > now)
            {
                continue;
            }

            try
            {
                await kubernetes.CoordinationV1.DeleteNamespacedLeaseAsync(lease.Metadata.Name, options.Namespace,
                    new V1DeleteOptions { Preconditions = new V1Preconditions { ResourceVersion = lease.Metadata.ResourceVersion } }, cancellationToken: cancellationToken);
                deleted++;
                logger.LogInformation("deleted the upload Lease {Lease} of {Target}: replica {Holder} has not renewed it since {Renewed:O} (longer than {Window}); its stream is gone",
                    lease.Metadata.Name, Annotation(lease, TargetAnnotation), lease.Spec?.HolderIdentity is { Length: > 0 } holder ? holder : "none", at, silentFor);
            }
            catch (HttpOperationException e) when (e.Response.StatusCode is HttpStatusCode.Conflict or HttpStatusCode.NotFound)
            {
                // renewed, taken or deleted meanwhile
            }
        }

        return deleted;
    }

    /// <summary>A flight recording's state as its holder last wrote it into the Lease, or null.</summary>
    private static KubeCapture.Contracts.Resources.RecorderStatus? RecorderOf(string? json)
    {
        try
        {
            return json is null ? null : k8s.KubernetesJson.Deserialize<KubeCapture.Contracts.Resources.RecorderStatus>(json);
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }

    /// <summary>One annotation of a Lease, or null.</summary>
    public static string? Annotation(V1Lease lease, string key) => lease.Metadata.Annotations is { } all && all.TryGetValue(key, out var value) ? value : null;

    private static long Seconds(V1Lease lease) => lease.Spec?.LeaseDurationSeconds ?? 0;

    /// <summary>Expired by this replica's clock: the same version seen for a whole lease duration.</summary>
    private bool Expired(string name, V1Lease lease)
    {
        var now = Stopwatch.GetTimestamp();
        var version = lease.Metadata.ResourceVersion;
        var seen = _observed.AddOrUpdate(name, (version, now), (_, before) => before.Version == version ? before : (version, now));
        return Stopwatch.GetElapsedTime(seen.SeenAt, now) >= TimeSpan.FromSeconds(Math.Max(1, Seconds(lease)));
    }

    private async Task<V1Lease?> ReadAsync(string name, CancellationToken cancellationToken)
    {
        try
        {
            return await kubernetes.CoordinationV1.ReadNamespacedLeaseAsync(name, options.Namespace, cancellationToken: cancellationToken);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    private V1Lease NewLease(string name, CaptureIdentity target) => new()
    {
        Metadata = new V1ObjectMeta
        {
            Name = name,
            NamespaceProperty = options.Namespace,
            Labels = new Dictionary<string, string> { [UploadLabel] = "true", [CaptureUidLabel] = target.CaptureUid },
            Annotations = new Dictionary<string, string> { [TargetAnnotation] = $"{target.Namespace}/{target.CaptureName}/{target.Pod}" },
        },
        Spec = new V1LeaseSpec { LeaseTransitions = 0 },
    };

    /// <summary>The Lease as this replica holds it: holder, duration, times, the session it streams for, its address; no handover pending.</summary>
    private V1Lease Held(V1Lease lease, IStreamOwner? owner, bool transition)
    {
        var now = DateTime.UtcNow;
        var annotations = new Dictionary<string, string>(lease.Metadata.Annotations ?? new Dictionary<string, string>());
        annotations.Remove(HandoverAnnotation);
        annotations.Remove(ProgressAnnotation);
        annotations.Remove(RecorderAnnotation);
        if (owner is not null)
        {
            annotations[SessionAnnotation] = owner.Session.Sha256;
        }

        if (options.Address is { Length: > 0 } address)
        {
            annotations[AddressAnnotation] = address;
        }

        if (options.RelayUrl is { Length: > 0 } relay)
        {
            annotations[RelayAnnotation] = relay;
        }
        else
        {
            annotations.Remove(RelayAnnotation);
        }

        lease.Metadata.Annotations = annotations;
        lease.Spec ??= new V1LeaseSpec();
        lease.Spec.HolderIdentity = options.Identity;
        lease.Spec.LeaseDurationSeconds = (int)Math.Ceiling(options.LeaseDuration.TotalSeconds);
        lease.Spec.AcquireTime = transition || lease.Spec.AcquireTime is null ? now : lease.Spec.AcquireTime;
        lease.Spec.RenewTime = now;
        lease.Spec.LeaseTransitions = (lease.Spec.LeaseTransitions ?? 0) + (transition ? 1 : 0);
        return lease;
    }

    private UploadClaim Claimed(V1Lease lease, CaptureIdentity target, IStreamOwner? owner, long started)
    {
        _observed.TryRemove(lease.Metadata.Name, out _);
        return new UploadClaim(kubernetes, options, lease, target, owner, started, logger);
    }
}

/// <summary>The Lease timings of target uploads and who this replica is (configuration: Ingest:UploadLease*).</summary>
public sealed record UploadOwnershipOptions(string Identity, string Namespace, string? Address, TimeSpan LeaseDuration, TimeSpan RenewDeadline)
{
    /// <summary>Where the other replicas reach this one's live streams (https://POD_IP:PORT of the extension API's listener), or null when it serves none.</summary>
    public string? RelayUrl { get; init; }

    /// <summary>How often the holder renews: a third of the duration, so that two renewals may fail before the deadline.</summary>
    public TimeSpan RenewPeriod => LeaseDuration / 3;

    /// <summary>How soon a failed renewal is tried again (within the renew deadline).</summary>
    public TimeSpan RetryPeriod => TimeSpan.FromTicks(Math.Max(TimeSpan.FromMilliseconds(200).Ticks, LeaseDuration.Ticks / 15));
}

/// <summary>Where the other replicas reach this one's live streams (registered by the extension API when it is served; the upload Leases carry it).</summary>
public sealed record StreamRelayAddress(string Url);

/// <summary>
/// The replica holding a target's upload Lease, where its live stream is relayed from (null: it serves
/// no extension API), and the version of the Lease read (a new one after each renewal).
/// </summary>
public sealed record StreamHolder(string Identity, string? RelayUrl, string? Version = null);

/// <summary>Another live replica holds the target's upload: retry (the agent's resume lands once it let go or its Lease expired).</summary>
public sealed class UploadOwnedElsewhereException(CaptureIdentity target, string holder, string? address, bool handoverAsked, long leaseSeconds) : Exception(
    $"replica {holder}{(address is null ? "" : $" ({address})")} holds the upload of capture {target.Namespace}/{target.CaptureName} pod {target.Pod}" +
    (handoverAsked ? " for this agent session on an older stream; it was asked to hand over" : "") +
    $"; retry: this replica takes over once it lets go or has not renewed its Lease for {leaseSeconds} s")
{
    public string Holder { get; } = holder;
}

/// <summary>What the replica streaming a target last wrote into its Lease: packets, bytes and kernel drops so far, and a flight recording's state.</summary>
public sealed record UploadProgress(long Packets, long Bytes, long DroppedByKernel)
{
    public KubeCapture.Contracts.Resources.RecorderStatus? Recorder { get; init; }

    public static UploadProgress? Parse(string? text) =>
        text?.Split(' ') is [var p, var b, var d] && long.TryParse(p, out var packets) && long.TryParse(b, out var bytes) && long.TryParse(d, out var dropped)
            ? new UploadProgress(packets, bytes, dropped)
            : null;
}
