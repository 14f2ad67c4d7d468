using System.Text.Json;
using System.Text.Json.Serialization;
using k8s.Models;

namespace KubeCapture.Contracts.Resources;

public sealed class PacketCaptureStatus
{
    /// <summary>Pending, Running, Uploading, Succeeded or Failed (see <see cref="CapturePhase"/>).</summary>
    [JsonPropertyName("phase")]
    public string? Phase { get; set; }

    /// <summary>One line for people: what is happening, or what went wrong.</summary>
    [JsonPropertyName("message")]
    public string? Message { get; set; }

    [JsonPropertyName("observedGeneration")]
    public long? ObservedGeneration { get; set; }

    [JsonPropertyName("startTime")]
    public DateTime? StartTime { get; set; }

    [JsonPropertyName("completionTime")]
    public DateTime? CompletionTime { get; set; }

    /// <summary>"pod" or "pod1,pod2": the printer column Target.</summary>
    [JsonPropertyName("targetSummary")]
    public string? TargetSummary { get; set; }

    [JsonPropertyName("packets")]
    public long? Packets { get; set; }

    [JsonPropertyName("droppedByKernel")]
    public long? DroppedByKernel { get; set; }

    /// <summary>Findings of every target, those left out included: the printer column Findings.</summary>
    [JsonPropertyName("findingCount")]
    public long? FindingCount { get; set; }

    /// <summary>The most serious findings of all targets, each naming its target (at most <see cref="Findings.StatusFindings.MaxPerCapture"/>).</summary>
    [JsonPropertyName("findings")]
    public IList<CaptureFinding>? Findings { get; set; }

    [JsonPropertyName("conditions")]
    public IList<V1Condition> Conditions { get; set; } = [];

    [JsonPropertyName("targets")]
    public IList<CaptureTargetStatus> Targets { get; set; } = [];

    /// <summary>A flight recording (spec.recorder): the snapshots stored so far, each with its trigger, window and artifact.</summary>
    [JsonPropertyName("snapshots")]
    public IList<SnapshotStatus>? Snapshots { get; set; }
}

public static class CapturePhase
{
    public const string Pending = "Pending";
    public const string Running = "Running";
    public const string Uploading = "Uploading";
    public const string Succeeded = "Succeeded";
    public const string Failed = "Failed";

    public static bool IsTerminal(string? phase) => phase is Succeeded or Failed;
}

/// <summary>Per target pod: where the capture runs and what it produced.</summary>
public sealed class CaptureTargetStatus
{
    [JsonPropertyName("pod")]
    public string Pod { get; set; } = "";

    [JsonPropertyName("node")]
    public string? Node { get; set; }

    /// <summary>The ephemeral container's name (deterministic from the capture UID).</summary>
    [JsonPropertyName("container")]
    public string Container { get; set; } = "";

    /// <summary>Pending, Starting, Capturing, Uploading, Succeeded or Failed (see <see cref="TargetState"/>).</summary>
    [JsonPropertyName("state")]
    public string State { get; set; } = TargetState.Pending;

    /// <summary>Why the target failed, in CamelCase (ImagePullFailed, AgentCrashed, DeadlineExceeded...).</summary>
    [JsonPropertyName("reason")]
    public string? Reason { get; set; }

    [JsonPropertyName("message")]
    public string? Message { get; set; }

    [JsonPropertyName("packets")]
    public long Packets { get; set; }

    [JsonPropertyName("bytes")]
    public long Bytes { get; set; }

    [JsonPropertyName("droppedByKernel")]
    public long DroppedByKernel { get; set; }

    /// <summary>count, duration, bytes, signal, requested or error (the agent's manifest).</summary>
    [JsonPropertyName("stopReason")]
    public string? StopReason { get; set; }

    [JsonPropertyName("exitCode")]
    public int? ExitCode { get; set; }

    [JsonPropertyName("artifact")]
    public CaptureArtifact? Artifact { get; set; }

    /// <summary>
    /// Uploads for this target the ingest refused: not from the pod's addresses (a forged stream, or
    /// pod traffic NATed on its way), after the target ended, or from a second agent session.
    /// </summary>
    [JsonPropertyName("refusedUploads")]
    public long? RefusedUploads { get; set; }

    /// <summary>
    /// Of <see cref="RefusedUploads"/>, those refused because another agent session held the target's
    /// upload: someone with the upload token ran code inside the pod.
    /// </summary>
    [JsonPropertyName("refusedSessions")]
    public long? RefusedSessions { get; set; }

    /// <summary>Why the last refused upload was refused.</summary>
    [JsonPropertyName("lastRefusal")]
    public string? LastRefusal { get; set; }

    /// <summary>The agent's TCP summary (handshakes, refusals, resets, retransmissions); its findings are in <see cref="Findings"/>.</summary>
    [JsonPropertyName("summary")]
    public JsonElement? Summary { get; set; }

    /// <summary>What this target's packets show, most serious first (at most <see cref="Findings.StatusFindings.MaxPerTarget"/>); none for healthy traffic.</summary>
    [JsonPropertyName("findings")]
    public IList<CaptureFinding>? Findings { get; set; }

    /// <summary>Findings left out to keep the status small.</summary>
    [JsonPropertyName("findingsOmitted")]
    public int? FindingsOmitted { get; set; }

    /// <summary>A flight recording (spec.recorder): the recorder on this pod, as its agent last reported it.</summary>
    [JsonPropertyName("recorder")]
    public RecorderStatus? Recorder { get; set; }
}

public static class TargetState
{
    public const string Pending = "Pending";
    public const string Starting = "Starting";
    public const string Capturing = "Capturing";
    public const string Uploading = "Uploading";
    public const string Succeeded = "Succeeded";
    public const string Failed = "Failed";

    public static bool IsTerminal(string state) => state is Succeeded or Failed;
}

public sealed class CaptureArtifact
{
    [JsonPropertyName("uri")]
    public string Uri { get; set; } = "";

    [JsonPropertyName("size")]
    public long Size { get; set; }

    [JsonPropertyName("sha256")]
    public string Sha256 { get; set; } = "";

    [JsonPropertyName("expiresAt")]
    public DateTime? ExpiresAt { get; set; }

    [JsonPropertyName("lock")]
    public string? Lock { get; set; }

    [JsonPropertyName("legalHold")]
    public bool? LegalHold { get; set; }

    /// <summary>Set when the PacketCapture was deleted and the objects were kept: why, and until when.</summary>
    [JsonPropertyName("kept")]
    public string? Kept { get; set; }

    /// <summary>True when this pcap did not come from the target's capture agent (the target failed UploadContested): never clean evidence.</summary>
    [JsonPropertyName("contested")]
    public bool? Contested { get; set; }
}
