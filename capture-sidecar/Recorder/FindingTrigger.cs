using KubeCapture.Agent.Summary;
using KubeCapture.Contracts.Recorder;

namespace KubeCapture.Agent.Recorder;

/// <summary>
/// A finding trigger: the agent's own summary, read as packets arrive (about once a second), counts
/// the findings of one type or severity (connections, or packets for findings about no connection).
/// It fires when more than the threshold came within the period (by packet time, to a 32nd of the
/// period: the counts are sampled into a fixed array), or, without a rate, when any new one came
/// since the last reading. Once per event: it re-arms only when a reading finds the rate at or
/// below the threshold again (hysteresis).
/// </summary>
public sealed class FindingTrigger
{
    private const int Samples = 64;
    private readonly (long Time, long Count)[] _samples = new (long, long)[Samples];
    private readonly long _periodMicroseconds;
    private int _sampleCount;
    private int _newest = -1;
    private long _previousCount;
    private bool _armed = true;

    public FindingTrigger(FindingTriggerSpec spec)
    {
        Spec = spec;
        _periodMicroseconds = spec.Period is { } period ? period.Ticks / TimeSpan.TicksPerMicrosecond : 0;
    }

    public FindingTriggerSpec Spec { get; }

    /// <summary>The count at the last reading.</summary>
    public long Count => _previousCount;

    /// <summary>Reads the summary at packet time <paramref name="time"/>; true when this reading fires the trigger.</summary>
    public bool Evaluate(TcpSummaryReport report, long time)
    {
        var count = CountIn(report);
        long recent;
        if (Spec.Period is null)
        {
            recent = count - _previousCount;
        }
        else
        {
            recent = count - CountAt(time - _periodMicroseconds);
            Sample(time, count);
        }

        _previousCount = count;
        var over = recent > Spec.MoreThan;
        if (!over)
        {
            _armed = true;
            return false;
        }

        if (!_armed)
        {
            return false;
        }

        _armed = false;
        return true;
    }

    /// <summary>How many of the findings this trigger watches a report holds: connections, or packets for capture-wide findings.</summary>
    public long CountIn(TcpSummaryReport report)
    {
        long count = 0;
        foreach (var finding in report.Findings)
        {
            if (Spec.IsSeverity ? finding.Severity == Spec.Finding : finding.Type == Spec.Finding)
            {
                count += finding.Evidence.Connections > 0 ? finding.Evidence.Connections : Math.Max(1, finding.Evidence.Packets);
            }
        }

        return count;
    }

    /// <summary>The count at the newest sample taken at or before <paramref name="time"/>; 0 (the recording's start) when none is that old.</summary>
    private long CountAt(long time)
    {
        long found = 0;
        for (var i = 0; i < _sampleCount; i++)
        {
            var sample = _samples[(_newest - i + Samples) % Samples];
            if (sample.Time <= time)
            {
                return sample.Count;
            }
        }

        return found;
    }

    /// <summary>Keeps a sample at most every 32nd of the period: 64 of them cover two periods.</summary>
    private void Sample(long time, long count)
    {
        if (_sampleCount > 0 && time - _samples[_newest].Time < _periodMicroseconds / 32)
        {
            return;
        }

        _newest = (_newest + 1) % Samples;
        _samples[_newest] = (time, count);
        _sampleCount = Math.Min(_sampleCount + 1, Samples);
    }
}
