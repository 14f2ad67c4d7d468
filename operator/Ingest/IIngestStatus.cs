using KubeCapture.Agent.Capture;

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

    /// <summary>Raised when a target's upload changes (connected, progress, finished, failed).</summary>
    event Action<TargetUpload>? Changed;
}

/// <summary>Issues the per-capture, per-target token the agent presents to the ingest.</summary>
public interface ICaptureTokenIssuer
{
    string Issue(CaptureIdentity target);
}

/// <summary>Who a capture target is: the PacketCapture (UID, namespace, name) and one target pod.</summary>
public sealed record CaptureIdentity(string CaptureUid, string Namespace, string CaptureName, string Pod);

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

    public StoredArtifact? Artifact { get; init; }

    public string? Error { get; init; }

    public DateTimeOffset UpdatedAt { get; init; }
}

/// <summary>Where a finished pcap is stored, and how to prove it is untouched.</summary>
public sealed record StoredArtifact(string Uri, long Size, string Sha256, DateTimeOffset? ExpiresAt);
