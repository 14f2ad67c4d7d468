namespace KubeCapture.Operator.Provenance;

/// <summary>Where a finished pcap is stored, and how to prove it is untouched.</summary>
public sealed record StoredArtifact(string Uri, long Size, string Sha256, DateTimeOffset? ExpiresAt, RetentionRecord? Retention = null);
