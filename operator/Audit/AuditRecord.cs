using System.Text.Json;
using System.Text.Json.Serialization;
using KubeCapture.Operator.Custody;
using KubeCapture.Operator.Provenance;

namespace KubeCapture.Operator.Audit;

/// <summary>
/// One line of the audit log (schema audit.kubecapture.io/v1, documented in docs/security.md, Audit log):
/// one JSON object per line on the operator's stdout, one per lifecycle event of a capture.
/// Fields are only ever added, never renamed or removed, within v1.
/// </summary>
public sealed record AuditRecord
{
    public const string SchemaVersion = "audit.kubecapture.io/v1";

    [JsonPropertyOrder(-3)]
    public string ApiVersion { get; init; } = SchemaVersion;

    [JsonPropertyOrder(-2)]
    public string Kind { get; init; } = "CaptureAuditEvent";

    /// <summary>UTC, RFC 3339 with microseconds.</summary>
    [JsonPropertyOrder(-1)]
    public required string Time { get; init; }

    /// <summary>requested, refused, admitted, started, stopped, stored, contested, downloaded, expired, break-glass or deleted (<see cref="AuditEvent"/>).</summary>
    public required string Event { get; init; }

    public required string Namespace { get; init; }

    public required string Capture { get; init; }

    public required string CaptureUid { get; init; }

    /// <summary>The target pod, for events of one target (started, stopped, stored, expired, downloaded).</summary>
    public string? Pod { get; init; }

    /// <summary>Who asked for the capture (the admission stamp); null where it is not known.</summary>
    public CaptureRequester? Requester { get; init; }

    /// <summary>spec.reason of the capture.</summary>
    public string? CaptureReason { get; init; }

    /// <summary>The reason of the matching Kubernetes Event (Requested, Refused, ...) or, for refusals, why.</summary>
    public required string EventReason { get; init; }

    public required string Message { get; init; }

    /// <summary>The stored pcap the event is about (stored, expired, deleted, downloaded).</summary>
    public AuditArtifact? Artifact { get; init; }

    /// <summary>Who did it, for events a user causes through the operator (downloaded, break-glass).</summary>
    public string? Actor { get; init; }

    public string ToJsonLine() => JsonSerializer.Serialize(this, AuditJsonContext.Default.AuditRecord);
}

public sealed record AuditArtifact
{
    public required string Uri { get; init; }

    public long? Size { get; init; }

    public string? Sha256 { get; init; }

    public string? VersionId { get; init; }

    /// <summary>Until when an Object Lock keeps it (kept, not deleted).</summary>
    public DateTimeOffset? RetainUntil { get; init; }
}

/// <summary>The event names of the audit log.</summary>
public static class AuditEvent
{
    public const string Requested = "requested";
    public const string Refused = "refused";
    public const string Admitted = "admitted";
    public const string Started = "started";
    public const string Stopped = "stopped";
    public const string Stored = "stored";
    public const string Snapshot = "snapshot";
    public const string Contested = "contested";
    public const string Downloaded = "downloaded";
    public const string Expired = "expired";
    public const string Deleted = "deleted";
    public const string BreakGlass = "break-glass";
}

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(AuditRecord))]
public sealed partial class AuditJsonContext : JsonSerializerContext
{
}
