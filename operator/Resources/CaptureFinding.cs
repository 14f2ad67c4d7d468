using System.Text.Json.Serialization;

namespace KubeCapture.Operator.Resources;

/// <summary>
/// One thing the packets show, in the status: a stable type (docs/findings.md), a severity, one
/// plain sentence, and the evidence to check it in Wireshark. Bounded (see <see cref="Findings.StatusFindings"/>).
/// </summary>
public sealed class CaptureFinding
{
    /// <summary>ConnectionRefused, SynUnanswered, HandshakeIncomplete, ResetSuspectedForged... (never changes meaning).</summary>
    [JsonPropertyName("type")]
    public string Type { get; set; } = "";

    /// <summary>Error, Warning or Info.</summary>
    [JsonPropertyName("severity")]
    public string Severity { get; set; } = "";

    /// <summary>What the packets show, in plain words.</summary>
    [JsonPropertyName("message")]
    public string Message { get; set; } = "";

    /// <summary>The target pod whose capture shows it (capture-level findings only).</summary>
    [JsonPropertyName("target")]
    public string? Target { get; set; }

    [JsonPropertyName("evidence")]
    public CaptureFindingEvidence Evidence { get; set; } = new();
}

/// <summary>What a finding stands on: flows, packet numbers in the stored pcap (Wireshark's frame.number), times, counts.</summary>
public sealed class CaptureFindingEvidence
{
    /// <summary>Connections the finding groups.</summary>
    [JsonPropertyName("connections")]
    public long Connections { get; set; }

    /// <summary>Packets the finding counts (SYNs, retransmissions, resets...).</summary>
    [JsonPropertyName("packets")]
    public long Packets { get; set; }

    /// <summary>A few sample flows, "client -> server".</summary>
    [JsonPropertyName("flows")]
    public IList<string> Flows { get; set; } = [];

    /// <summary>A few packet numbers in the target's pcap: <c>frame.number == N</c> in Wireshark.</summary>
    [JsonPropertyName("packetNumbers")]
    public IList<long> PacketNumbers { get; set; } = [];

    [JsonPropertyName("firstSeen")]
    public string? FirstSeen { get; set; }

    [JsonPropertyName("lastSeen")]
    public string? LastSeen { get; set; }

    /// <summary>What gives it away: bare-rst, ttl-mismatch, hop-limit-mismatch, sequence-outside-window.</summary>
    [JsonPropertyName("indicators")]
    public IList<string> Indicators { get; set; } = [];
}
