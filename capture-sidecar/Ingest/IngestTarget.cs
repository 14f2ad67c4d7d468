using System.Security.Cryptography.X509Certificates;

namespace KubeCapture.Agent.Ingest;

/// <summary>Cluster mode: where the pcap goes and who this agent is (from the operator, in args/env).</summary>
public sealed record IngestTarget
{
    /// <summary>The operator's ingest, e.g. https://kubecapture-ingest.kubecapture.svc:8081.</summary>
    public required Uri Url { get; init; }

    /// <summary>An https:// ingest: the CA certificates its certificate must chain to (nothing else is trusted); null for plain h2c.</summary>
    public X509Certificate2Collection? Authority { get; init; }

    public required string Token { get; init; }

    public required string CaptureUid { get; init; }

    public required string Namespace { get; init; }

    public required string CaptureName { get; init; }

    public required string Pod { get; init; }

    /// <summary>
    /// The W3C trace context the operator gave (env TRACEPARENT), sent back as gRPC metadata
    /// <c>traceparent</c> on every ingest stream so the operator's trace continues there; null: none.
    /// Only the header is passed on: the agent records no spans.
    /// </summary>
    public string? TraceParent { get; init; }

    /// <summary>How long the stored pcap is kept; null: the operator's default.</summary>
    public TimeSpan? Retention { get; init; }

    /// <summary>How long the ingest may stay unreachable before the upload fails for good.</summary>
    public TimeSpan RetryBudget { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>Unacknowledged bytes kept for resuming (at least two of the ingest's parts).</summary>
    public int BufferBytes { get; init; } = 32 << 20;
}

/// <summary>The upload failed for good; the message says why, for people.</summary>
public sealed class IngestFailedException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Where the ingest stored the pcap.</summary>
public sealed record StoredPcap(string Uri, long Size, string Sha256, string? ExpiresAt);
