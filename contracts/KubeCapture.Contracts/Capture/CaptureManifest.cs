using System.Text.Json;
using System.Text.Json.Serialization;
using KubeCapture.Contracts.Summary;

namespace KubeCapture.Contracts.Capture;

/// <summary>
/// What a capture was and what it holds: written beside the pcap as <c>OUT.pcap.json</c>, printed by
/// <c>--json</c>, and carried to the operator at the end of an ingest stream.
/// </summary>
public sealed record CaptureManifest
{
    public required string AgentVersion { get; init; }

    public required string Interface { get; init; }

    /// <summary>libpcap's name for the link type, e.g. EN10MB or LINUX_SLL.</summary>
    public required string LinkType { get; init; }

    /// <summary>The DLT_ number in the pcap file header.</summary>
    public required uint LinkTypeValue { get; init; }

    public required string Filter { get; init; }

    /// <summary>
    /// The expression the kernel ran, when it is not <see cref="Filter"/>: the filter widened to the
    /// ICMP errors and IPv6 jumbograms of the flows it selects (see <c>WidenedFilter</c>); null when
    /// the capture ran exactly the filter (none given, or <c>--exact-filter</c>).
    /// </summary>
    public string? CaptureFilter { get; init; }

    /// <summary>Packets kept that the filter alone did not match: ICMP errors quoting a packet it matches, jumbograms whose TCP it matches.</summary>
    public long PacketsAdded { get; init; }

    /// <summary>Packets the widened kernel filter passed that were about other flows: discarded, not in the pcap (counted in <see cref="PacketsReceived"/>).</summary>
    public long PacketsDiscarded { get; init; }

    public required int Snaplen { get; init; }

    public required CaptureLimits Limits { get; init; }

    /// <summary>UTC, microsecond precision.</summary>
    public required string Start { get; init; }

    /// <summary>UTC, microsecond precision.</summary>
    public required string End { get; init; }

    public required long PacketsWritten { get; init; }

    /// <summary>Size of the pcap file, header included.</summary>
    public required long BytesWritten { get; init; }

    /// <summary>libpcap ps_recv: packets that passed the filter in the kernel.</summary>
    public required long PacketsReceived { get; init; }

    /// <summary>libpcap ps_drop: packets the kernel dropped because the capture buffer was full.</summary>
    public required long PacketsDroppedByKernel { get; init; }

    /// <summary>libpcap ps_ifdrop: packets the interface or its driver dropped.</summary>
    public required long PacketsDroppedByInterface { get; init; }

    /// <summary>count, duration, bytes, signal, requested or error.</summary>
    public required string StopReason { get; init; }

    /// <summary>What went wrong when <see cref="StopReason"/> is "error".</summary>
    public string? Error { get; init; }

    public required string Sha256 { get; init; }

    /// <summary>Where the pcap went: a local path, or the ingest URL.</summary>
    public required string Output { get; init; }

    public TcpSummaryReport? Summary { get; init; }

    public string ToJson() => JsonSerializer.Serialize(this, ManifestJsonContext.Default.CaptureManifest);

    public static CaptureManifest FromJson(string json) =>
        JsonSerializer.Deserialize(json, ManifestJsonContext.Default.CaptureManifest)
        ?? throw new JsonException("empty manifest");

    public static string FormatTimestamp(DateTime utc) =>
        utc.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", System.Globalization.CultureInfo.InvariantCulture);
}

public sealed record CaptureLimits
{
    public long? MaxPackets { get; init; }

    /// <summary>As typed: "30s", "5m".</summary>
    public required string Duration { get; init; }

    public required double DurationSeconds { get; init; }

    public required long MaxBytes { get; init; }
}

[JsonSourceGenerationOptions(
    WriteIndented = true,
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(CaptureManifest))]
public sealed partial class ManifestJsonContext : JsonSerializerContext
{
}
