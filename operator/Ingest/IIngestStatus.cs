using KubeCapture.Contracts;
using KubeCapture.Contracts.Capture;
using KubeCapture.Contracts.Resources;
using KubeCapture.Contracts.Summary;
using KubeCapture.Operator.Provenance;

namespace KubeCapture.Operator.Ingest;

/// <summary>
/// The seam between the ingest (which receives each target's pcap stream and stores it) and the
/// reconciler (which keeps the PacketCapture's status true). Implemented by the ingest; read by the
/// reconciler. Survives an operator restart: what was finished is found again in storage.
/// </summary>
public interface IIngestStatus
{
    /// <summary>One target's upload, or null when its agent has not connected yet.</summary>
    Task<TargetUpload?> GetAsync(CaptureIdentity target, CancellationToken cancellationToken);

    /// <summary>Tells every agent of the capture to stop early: each finishes its pcap and uploads it.</summary>
    void RequestStop(string captureUid);

    /// <summary>The snapshots of a target's flight recording stored so far (each a finished upload of its own), by index.</summary>
    IReadOnlyList<TargetUpload> Snapshots(CaptureIdentity target) => [];

    /// <summary>
    /// Snapshot <c>snapshot.Snapshot</c> of a target's recording as stored, by this replica or (every
    /// replica ingests) another: read from storage when this one did not store it. Null when it is not stored.
    /// </summary>
    Task<TargetUpload?> StoredSnapshotAsync(CaptureIdentity snapshot, CancellationToken cancellationToken) => Task.FromResult<TargetUpload?>(null);

    /// <summary>Raised when a target's upload changes (connected, progress, finished, failed).</summary>
    event Action<TargetUpload>? Changed;

    /// <summary>
    /// The reconciler found that the target's stored (or still streaming) pcap did not come from its
    /// capture agent: its manifest records <paramref name="message"/> (a stored one is amended, one
    /// still streaming says so when it is published). Repeating it changes nothing.
    /// </summary>
    void MarkContested(CaptureIdentity target, string message);
}

/// <summary>
/// The binding of each capture target to its pod and to the capture's own terms: the reconciler,
/// which reads the pod and the capture, tells the ingest the addresses the pod's status gives
/// (status.podIPs), the capture's maxBytes and retention as it resolved them, and when the target
/// has ended; the ingest accepts an upload for the target only from one of those addresses (the
/// connection's peer address), only while the target has not ended, and holds it to those terms
/// whatever the agent claims. Knowing the token is not enough: the stream must come from inside the
/// pod's network namespace. Implemented by the ingest; told by the reconciler on every reconcile, so
/// after an operator restart or on a new leader the binding is known again once the capture is
/// reconciled (until then an agent gets UNAVAILABLE and retries).
/// </summary>
public interface IAgentAddresses
{
    /// <summary>The addresses the target's agent may upload from (the pod's IPs, as its status gives them), and the capture's terms.</summary>
    void Expect(CaptureIdentity target, UploadTerms terms);

    /// <summary>
    /// The target's pod is gone: no upload is accepted for it any more (its IP may be given to
    /// another pod), and one that tries is refused and counted.
    /// </summary>
    void Unbind(CaptureIdentity target);

    /// <summary>
    /// The target has ended (Succeeded, Failed, stopped before it started): no upload is accepted for
    /// it any more; one that tries is refused and counted. <paramref name="why"/> goes into the refusal.
    /// </summary>
    void Close(CaptureIdentity target, string why);

    /// <summary>Forgets every target of a capture (the capture is gone).</summary>
    void Forget(string captureUid);

    /// <summary>Uploads refused for the target and not yet surfaced by the reconciler, with the last refusal's message.</summary>
    UploadRefusals Refusals(CaptureIdentity target);

    /// <summary>The reconciler has recorded these refusals in the status: they are no longer pending.</summary>
    void Surfaced(CaptureIdentity target, UploadRefusals surfaced);

    /// <summary>Raised when an upload for the target is refused (a forged stream, or a NAT the binding cannot see through).</summary>
    event Action<CaptureIdentity>? Refused;
}

/// <summary>
/// Refused uploads of one target not yet in its status, and why the last one was refused.
/// <paramref name="Sessions"/> of them were refused because another agent session held the target's
/// upload (the same token, from the pod's own addresses: someone who could run code in the pod).
/// </summary>
public sealed record UploadRefusals(long Count, string? LastMessage, long Sessions = 0)
{
    public static readonly UploadRefusals None = new(0, null);

    /// <summary>Adds these refusals to the target's status (<c>refusedUploads</c>, <c>refusedSessions</c>, <c>lastRefusal</c>).</summary>
    public void AddTo(CaptureTargetStatus target)
    {
        target.RefusedUploads = (target.RefusedUploads ?? 0) + Count;
        if (Sessions > 0)
        {
            target.RefusedSessions = (target.RefusedSessions ?? 0) + Sessions;
        }

        target.LastRefusal = LastMessage;
    }

    /// <summary>The Warning Event's words for the refusals of <paramref name="pod"/>'s upload.</summary>
    public string EventMessage(string pod) => $"pod {pod}: {Count} upload(s) refused (the target's upload was not touched): {LastMessage}";
}

/// <summary>
/// What the reconciler resolved for one target's upload: the pod's addresses, the most bytes its
/// pcap may have (spec.maxBytes; null: not enforced), how long it is kept (spec.retention.ttl;
/// null: Storage:DefaultRetention) and, for a flight recording, how many snapshots it may upload
/// (spec.recorder.maxSnapshots; null: not a recording, none) and its ring's size (spec.recorder.maxBytes),
/// which bounds each snapshot. The agent's own claims (its Open's retention) are ignored.
/// </summary>
public sealed record UploadTerms(IReadOnlyList<string> PodIps, long? MaxBytes = null, TimeSpan? Retention = null, int? MaxSnapshots = null, long? RingBytes = null)
{
    /// <summary>The most bytes one snapshot's pcap may have (null: not a recording, or its ring unknown): twice the ring plus the file header.</summary>
    public long? SnapshotMaxBytes => RingBytes is { } ring ? KubeCapture.Contracts.Recorder.RecorderLimits.SnapshotMaxBytes(ring) : null;

    /// <summary>The capture's own terms for a target's upload, as the ingest holds every stream to them whatever the agent claims.</summary>
    public static UploadTerms Of(KubeCapture.Contracts.Resources.PacketCapture capture, k8s.Models.V1Pod pod)
    {
        long? maxBytes = Quantities.TryParseSize(capture.Spec.MaxBytes ?? KubeCapture.Contracts.Resources.PacketCaptureSpec.DefaultMaxBytes, out var bytes, out _) ? bytes : null;
        TimeSpan? retention = capture.Spec.Retention?.Ttl is { } ttl && Quantities.TryParseDuration(ttl, out var kept, out _) ? kept : null;
        int? maxSnapshots = capture.Spec.Recorder is { } recorder ? recorder.MaxSnapshots ?? KubeCapture.Contracts.Recorder.RecorderLimits.DefaultMaxSnapshots : null;
        long? ringBytes = capture.Spec.Recorder is { } recording && Quantities.TryParseSize(recording.RingBytes, out var ring, out _) ? ring : null;
        return new UploadTerms(PodAddresses.Of(pod), maxBytes, retention, maxSnapshots, ringBytes);
    }
}

/// <summary>Issues the per-capture, per-target token the agent presents to the ingest.</summary>
public interface ICaptureTokenIssuer
{
    string Issue(CaptureIdentity target);
}

public enum UploadPhase
{
    /// <summary>The agent is connected and streaming.</summary>
    Streaming,

    /// <summary>The pcap is stored whole and its SHA-256 verified.</summary>
    Finished,

    /// <summary>The upload failed for good; <see cref="TargetUpload.Error"/> says why.</summary>
    Failed,
}

/// <summary>What the ingest knows about one target's upload.</summary>
public sealed record TargetUpload
{
    public required CaptureIdentity Target { get; init; }

    public required UploadPhase Phase { get; init; }

    public long Packets { get; init; }

    public long Bytes { get; init; }

    public long DroppedByKernel { get; init; }

    /// <summary>The agent's manifest, once the capture ended (stop reason, counters, summary, SHA-256).</summary>
    public CaptureManifest? Manifest { get; init; }

    /// <summary>The agent's TCP summary so far (its latest Progress), while it captures.</summary>
    public TcpSummaryReport? SummarySoFar { get; init; }

    /// <summary>A flight recording's stream: the recorder's state as its agent last reported it.</summary>
    public KubeCapture.Contracts.Resources.RecorderStatus? Recorder { get; init; }

    /// <summary>A snapshot's upload (<see cref="CaptureIdentity.Snapshot"/> &gt; 0), once stored: its agent's manifest.</summary>
    public KubeCapture.Contracts.Recorder.SnapshotManifest? Snapshot { get; init; }

    public StoredArtifact? Artifact { get; init; }

    public string? Error { get; init; }

    public DateTimeOffset UpdatedAt { get; init; }
}
