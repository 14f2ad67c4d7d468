using System.Text.Json.Serialization;

namespace KubeCapture.Contracts.Resources;

/// <summary>
/// status.snapshots[]: one snapshot of a flight recording (spec.recorder), stored with the custody of
/// any capture: what window it holds, why it was kept, where it is and how to prove it untouched.
/// </summary>
public sealed class SnapshotStatus
{
    /// <summary>The pod whose recording took it.</summary>
    [JsonPropertyName("pod")]
    public string Pod { get; set; } = "";

    /// <summary>1 for the pod's first snapshot: <c>kubectl capture download NAME --snapshot 1</c>.</summary>
    [JsonPropertyName("index")]
    public int Index { get; set; }

    /// <summary>When its trigger fired.</summary>
    [JsonPropertyName("time")]
    public DateTime? Time { get; set; }

    /// <summary>"manual", "alert" (an Alertmanager alert, through the operator's receiver), "filter" or "finding".</summary>
    [JsonPropertyName("triggerKind")]
    public string TriggerKind { get; set; } = "";

    /// <summary>The trigger, as given: the filter and its rate, the finding, who asked by hand.</summary>
    [JsonPropertyName("triggerDetail")]
    public string? TriggerDetail { get; set; }

    /// <summary>A snapshot by hand: who asked it (the user kube-apiserver authenticated, or the alert).</summary>
    [JsonPropertyName("requester")]
    public string? Requester { get; set; }

    /// <summary>The window it holds: from <c>windowStart</c> to <c>windowEnd</c> (RFC 3339 with microseconds).</summary>
    [JsonPropertyName("windowStart")]
    public string? WindowStart { get; set; }

    [JsonPropertyName("windowEnd")]
    public string? WindowEnd { get; set; }

    [JsonPropertyName("packets")]
    public long Packets { get; set; }

    /// <summary>The stored pcap: URI, size, SHA-256, retention and lock.</summary>
    [JsonPropertyName("artifact")]
    public CaptureArtifact? Artifact { get; set; }

    /// <summary>The findings of the snapshot's own packets.</summary>
    [JsonPropertyName("findings")]
    public IList<CaptureFinding>? Findings { get; set; }
}

/// <summary>status.targets[].recorder: the flight recorder on that pod, as its agent last reported it.</summary>
public sealed class RecorderStatus
{
    /// <summary>True while a trigger can still take a snapshot (fewer than maxSnapshots taken, none being written).</summary>
    [JsonPropertyName("armed")]
    public bool Armed { get; set; }

    /// <summary>Bytes of packets in the ring, and the ring's size.</summary>
    [JsonPropertyName("ringBytes")]
    public long RingBytes { get; set; }

    [JsonPropertyName("ringCapacity")]
    public long RingCapacity { get; set; }

    /// <summary>Packets the recorder has seen, and the kernel dropped.</summary>
    [JsonPropertyName("packetsSeen")]
    public long PacketsSeen { get; set; }

    [JsonPropertyName("droppedByKernel")]
    public long DroppedByKernel { get; set; }

    [JsonPropertyName("snapshotsTaken")]
    public int SnapshotsTaken { get; set; }

    [JsonPropertyName("triggersNotTaken")]
    public long TriggersNotTaken { get; set; }

    /// <summary>The last trigger that fired, taken or not, and what became of it.</summary>
    [JsonPropertyName("lastTrigger")]
    public string? LastTrigger { get; set; }
}
