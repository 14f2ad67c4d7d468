using KubeCapture.Agent.Capture;

namespace KubeCapture.Agent.Recorder;

/// <summary>What a recording was asked for: the capture's guard rails, the ring, the triggers and where snapshots go.</summary>
public sealed record RecorderOptions
{
    public static readonly TimeSpan DefaultAfter = TimeSpan.FromSeconds(10);
    public const int DefaultMaxSnapshots = 3;
    public const int MaxMaxSnapshots = 100;

    /// <summary>Interface, filter, snaplen, duration, count; <see cref="CaptureOptions.MaxBytes"/> is the ring's size.</summary>
    public required CaptureOptions Capture { get; init; }

    /// <summary>How much of the past a snapshot keeps: the ring holds the last <see cref="Window"/> of packets.</summary>
    public required TimeSpan Window { get; init; }

    /// <summary>How long a snapshot goes on after its trigger.</summary>
    public TimeSpan After { get; init; } = DefaultAfter;

    /// <summary>After a snapshot ends, automatic triggers are not taken for this long (packet time); default: the window.</summary>
    public required TimeSpan Cooldown { get; init; }

    public int MaxSnapshots { get; init; } = DefaultMaxSnapshots;

    public required string SnapshotDirectory { get; init; }

    public FilterTriggerSpec? FilterTrigger { get; init; }

    public IReadOnlyList<FindingTriggerSpec> FindingTriggers { get; init; } = [];

    /// <summary>
    /// How far back the ring keeps packets: the window, plus the filter trigger's period (a snapshot
    /// starts a window before the first of the matches that crossed its threshold, up to a period before it fired).
    /// </summary>
    public TimeSpan Retention => Window + (FilterTrigger?.Threshold.Period ?? TimeSpan.Zero);
}

/// <summary>COUNT events within PERIOD, as typed: 20/10s.</summary>
public sealed record TriggerThreshold(long Count, TimeSpan Period)
{
    public override string ToString() => $"{Count}/{Quantities.FormatDuration(Period)}";
}

/// <summary>--trigger-filter EXPR --trigger-count N/PERIOD: a second BPF filter, run on the captured packets.</summary>
public sealed record FilterTriggerSpec(string Expression, TriggerThreshold Threshold)
{
    public override string ToString() => $"filter '{Expression}' matched {Threshold.Count} times within {Quantities.FormatDuration(Threshold.Period)}";
}

/// <summary>
/// One item of --trigger-finding: a finding type or a severity (Error, Warning), and more than
/// <see cref="MoreThan"/> of them within <see cref="Period"/> (null: any new one).
/// </summary>
public sealed record FindingTriggerSpec(string Finding, bool IsSeverity, long MoreThan, TimeSpan? Period)
{
    public override string ToString() => Period is { } period
        ? $"{Finding}>{MoreThan}/{Quantities.FormatDuration(period)}"
        : MoreThan > 0 ? $"{Finding}>{MoreThan}" : Finding;
}
