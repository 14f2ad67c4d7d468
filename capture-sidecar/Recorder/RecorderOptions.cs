using KubeCapture.Agent.Capture;
using KubeCapture.Contracts.Recorder;

namespace KubeCapture.Agent.Recorder;

/// <summary>What a recording was asked for: the capture's guard rails, the ring, the triggers and where snapshots go.</summary>
public sealed record RecorderOptions
{
    public static readonly TimeSpan DefaultAfter = RecorderLimits.DefaultAfter;
    public const int DefaultMaxSnapshots = RecorderLimits.DefaultMaxSnapshots;
    public const int MaxMaxSnapshots = RecorderLimits.MaxMaxSnapshots;

    /// <summary>Interface, filter, snaplen, duration, count; <see cref="CaptureOptions.MaxBytes"/> is the ring's size.</summary>
    public required CaptureOptions Capture { get; init; }

    /// <summary>How much of the past a snapshot keeps: the ring holds the last <see cref="Window"/> of packets.</summary>
    public required TimeSpan Window { get; init; }

    /// <summary>How long a snapshot goes on after its trigger.</summary>
    public TimeSpan After { get; init; } = DefaultAfter;

    /// <summary>After a snapshot ends, automatic triggers are not taken for this long (packet time); default: the window.</summary>
    public required TimeSpan Cooldown { get; init; }

    public int MaxSnapshots { get; init; } = DefaultMaxSnapshots;

    /// <summary>Local mode: where snapshot files go; null in cluster mode (<see cref="Ingest"/>).</summary>
    public string? SnapshotDirectory { get; init; }

    /// <summary>Cluster mode: each snapshot is uploaded to the operator's ingest, kept in memory until it is stored.</summary>
    public KubeCapture.Agent.Ingest.IngestTarget? Ingest { get; init; }

    public FilterTriggerSpec? FilterTrigger { get; init; }

    public IReadOnlyList<FindingTriggerSpec> FindingTriggers { get; init; } = [];

    /// <summary>
    /// How far back the ring keeps packets: the window, plus the filter trigger's period (a snapshot
    /// starts a window before the first of the matches that crossed its threshold, up to a period before it fired).
    /// </summary>
    public TimeSpan Retention => Window + (FilterTrigger?.Threshold.Period ?? TimeSpan.Zero);
}

/// <summary>--trigger-filter EXPR --trigger-count N/PERIOD: a second BPF filter, run on the captured packets.</summary>
public sealed record FilterTriggerSpec(string Expression, TriggerThreshold Threshold)
{
    public override string ToString() => $"filter '{Expression}' matched {Threshold.Count} times within {Quantities.FormatDuration(Threshold.Period)}";
}
