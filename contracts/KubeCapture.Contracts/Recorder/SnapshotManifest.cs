using System.Text.Json;
using System.Text.Json.Serialization;
using KubeCapture.Contracts.Summary;

namespace KubeCapture.Contracts.Recorder;

/// <summary>
/// What one snapshot holds and why it was kept: written beside its pcap as <c>FILE.pcap.json</c> and
/// printed as one JSON line on stdout by the agent; in a cluster, sent with the snapshot's Finish and
/// kept in its stored manifest. Times are UTC with microseconds, as packet times.
/// </summary>
public sealed record SnapshotManifest
{
    /// <summary>1 for the recording's first snapshot.</summary>
    public required int Snapshot { get; init; }

    /// <summary>Where the snapshot is: the file (local mode), or the stored object's URI (in a cluster).</summary>
    public required string File { get; init; }

    /// <summary>SHA-256 of the pcap file, lower-case hex.</summary>
    public required string Sha256 { get; init; }

    /// <summary>Size of the pcap file, header included.</summary>
    public required long Bytes { get; init; }

    public required long Packets { get; init; }

    public required SnapshotTrigger Trigger { get; init; }

    /// <summary>The window asked for: the trigger's event start minus the window.</summary>
    public required string WindowStart { get; init; }

    /// <summary>The trigger plus --after.</summary>
    public required string WindowEnd { get; init; }

    /// <summary>Times of the first and last packet written (null: none).</summary>
    public string? FirstPacket { get; init; }

    public string? LastPacket { get; init; }

    /// <summary>
    /// True when the ring (--max-bytes) had to drop packets of this window for room: the snapshot then
    /// starts at <see cref="FirstPacket"/>, after <see cref="WindowStart"/>, with the newest whole records that fit.
    /// </summary>
    public required bool WindowCutByMaxBytes { get; init; }

    /// <summary>
    /// Packets the kernel dropped (its buffer full) from shortly before the window to its end: 0 means
    /// none of the window's packets were lost there.
    /// </summary>
    public required long PacketsDroppedByKernel { get; init; }

    /// <summary>
    /// How the snapshot ended: "after" (its --after elapsed), "max-bytes" (the packets after the trigger
    /// reached the ring's size first: a snapshot holds at most twice --max-bytes), "stopped" (the
    /// recording ended first), "error".
    /// </summary>
    public required string Ended { get; init; }

    public string? Error { get; init; }

    public required SnapshotRecording Recording { get; init; }

    /// <summary>The findings of the snapshot's own packets, by the same summary as a capture's.</summary>
    public IReadOnlyList<Finding> Findings { get; init; } = [];

    public string ToJsonLine() => JsonSerializer.Serialize(this, SnapshotJsonContext.Default.SnapshotManifest);

    public static SnapshotManifest FromJson(string json) =>
        JsonSerializer.Deserialize(json, SnapshotJsonContext.Default.SnapshotManifest) ?? throw new JsonException("empty snapshot manifest");
}

/// <summary>Why a snapshot was kept.</summary>
public sealed record SnapshotTrigger
{
    /// <summary>"manual", "alert" (an Alertmanager alert, through the operator's receiver), "filter" or "finding".</summary>
    public required string Kind { get; init; }

    /// <summary>Which trigger, as given: "SIGUSR1", the filter and its rate, the finding and its rate, who asked through the operator.</summary>
    public required string Detail { get; init; }

    /// <summary>A snapshot by hand through the operator: who asked (the user kube-apiserver authenticated, or the alert); null otherwise.</summary>
    public string? Requester { get; init; }

    /// <summary>When it fired: the packet that crossed the threshold, the reading of the summary, or the request.</summary>
    public required string Time { get; init; }

    /// <summary>When the event began: the first of the filter matches that crossed the threshold (the window counts back from here); else the trigger's time.</summary>
    public required string EventStart { get; init; }
}

/// <summary>The recording a snapshot came from.</summary>
public sealed record SnapshotRecording
{
    public required string AgentVersion { get; init; }

    public required string Interface { get; init; }

    public required string Filter { get; init; }

    public required string LinkType { get; init; }

    public required uint LinkTypeValue { get; init; }

    public required int Snaplen { get; init; }

    /// <summary>As typed: 5m.</summary>
    public required string Window { get; init; }

    public required string After { get; init; }

    /// <summary>The ring's size: the agent holds at most this many bytes of packets.</summary>
    public required long MaxBytes { get; init; }

    /// <summary>How many times the ring had wrapped when the snapshot was taken.</summary>
    public required long RingWraps { get; init; }
}

[JsonSourceGenerationOptions(
    WriteIndented = false,
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(SnapshotManifest))]
public sealed partial class SnapshotJsonContext : JsonSerializerContext
{
}
