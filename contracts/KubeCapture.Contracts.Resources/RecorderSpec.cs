using System.Text.Json.Serialization;
using KubeCapture.Contracts.Recorder;

namespace KubeCapture.Contracts.Resources;

/// <summary>
/// spec.recorder: the capture runs as a flight recorder. Each agent keeps the last
/// <see cref="Window"/> of packets in a ring of at most <see cref="MaxBytes"/>, in its own memory,
/// and keeps packets only when a trigger fires: a snapshot from the window before the trigger to
/// <see cref="After"/> after it, uploaded through the ingest. spec.duration bounds the whole recording.
/// </summary>
public sealed class RecorderSpec
{
    /// <summary>How much of the past a snapshot keeps: "5m". Required; at most spec.duration.</summary>
    [JsonPropertyName("window")]
    public string Window { get; set; } = "";

    /// <summary>The ring, in the agent's memory: "64Mi" by default, whole records only, the oldest dropped first.</summary>
    [JsonPropertyName("maxBytes")]
    public string? MaxBytes { get; set; }

    /// <summary>How long a snapshot goes on after its trigger: "10s" by default.</summary>
    [JsonPropertyName("after")]
    public string? After { get; set; }

    /// <summary>The recording ends once this many snapshots are kept: 3 by default.</summary>
    [JsonPropertyName("maxSnapshots")]
    public int? MaxSnapshots { get; set; }

    /// <summary>After a snapshot ends, automatic triggers wait this long (packet time); the window by default.</summary>
    [JsonPropertyName("cooldown")]
    public string? Cooldown { get; set; }

    [JsonPropertyName("triggers")]
    public RecorderTriggerSpec? Triggers { get; set; }

    /// <summary>The ring's size as typed, or the default.</summary>
    [JsonIgnore]
    public string RingBytes => MaxBytes ?? RecorderLimits.DefaultRingBytesText;
}

/// <summary>spec.recorder.triggers: what takes a snapshot besides a request by hand (kubectl capture snapshot).</summary>
public sealed class RecorderTriggerSpec
{
    [JsonPropertyName("filter")]
    public RecorderFilterTrigger? Filter { get; set; }

    /// <summary>Finding types or severities, each with an optional rate: "ConnectionRefused>5/1m", "ResetBare", "Error".</summary>
    [JsonPropertyName("findings")]
    public List<string>? Findings { get; set; }
}

/// <summary>A second BPF filter run on every captured packet; it fires when it matched <see cref="Count"/> (N/PERIOD) times.</summary>
public sealed class RecorderFilterTrigger
{
    [JsonPropertyName("expression")]
    public string Expression { get; set; } = "";

    /// <summary>N/PERIOD: "20/10s"; "1/1s" by default (any match).</summary>
    [JsonPropertyName("count")]
    public string? Count { get; set; }
}
