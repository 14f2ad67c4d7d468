using KubeCapture.Agent.Capture;
using PacketDotNet;
using SharpPcap.LibPcap;

namespace KubeCapture.Agent.Recorder;

/// <summary>
/// The BPF trigger: a second filter, compiled by libpcap for the capture's link type and run on each
/// captured packet (<c>pcap_offline_filter</c>), not a second capture. It fires when the filter has
/// matched <c>N</c> times within the period (by packet time: the last N match times are kept in a
/// fixed array), and fires once per event: it re-arms only once fewer than N matches fall within a
/// period again (hysteresis), so a storm that goes on is one event.
/// </summary>
public sealed class FilterTrigger : IDisposable
{
    private readonly CompiledFilter _program;
    private readonly long[] _matches; // the last N match times, a circle
    private readonly long _periodMicroseconds;
    private int _next;
    private long _matched;
    private bool _armed = true;

    private FilterTrigger(FilterTriggerSpec spec, CompiledFilter program)
    {
        Spec = spec;
        _program = program;
        _matches = new long[spec.Threshold.Count];
        _periodMicroseconds = spec.Threshold.Period.Ticks / TimeSpan.TicksPerMicrosecond;
    }

    public FilterTriggerSpec Spec { get; }

    /// <summary>Packets the filter matched so far.</summary>
    public long Matched => _matched;

    /// <summary>Compiles the filter for <paramref name="link"/>; throws <see cref="CaptureSetupException"/> with libpcap's message when libpcap rejects it.</summary>
    public static FilterTrigger Create(FilterTriggerSpec spec, LinkLayers link) => new(spec, Compile(spec.Expression, link));

    /// <summary>Compiles a trigger filter only to check it.</summary>
    public static void Check(string expression, LinkLayers link) => Compile(expression, link).Dispose();

    /// <summary>
    /// Looks at one packet of time <paramref name="time"/> (microseconds since the epoch). True when
    /// this packet makes the trigger fire; <paramref name="eventStart"/> is then the time of the first
    /// of the N matches that crossed the threshold.
    /// </summary>
    public bool Observe(ReadOnlySpan<byte> frame, uint wireLength, long time, out long eventStart)
    {
        eventStart = 0;
        var matches = _program.Matches(frame, wireLength);
        if (matches)
        {
            _matches[_next] = time;
            _next = (_next + 1) % _matches.Length;
            _matched++;
        }

        // Over the threshold: the N-th latest match (the oldest kept, once there are N) is within a period of now.
        var oldest = _matches[_next];
        if (_matched < _matches.Length || time - oldest > _periodMicroseconds)
        {
            _armed = true; // fewer than N within the last period: the event, if any, is over
            return false;
        }

        if (!matches || !_armed)
        {
            return false;
        }

        _armed = false;
        eventStart = oldest;
        return true;
    }

    private static CompiledFilter Compile(string expression, LinkLayers link)
    {
        try
        {
            return CompiledFilter.For(link, expression);
        }
        catch (SharpPcap.PcapException e)
        {
            throw new CaptureSetupException($"invalid --trigger-filter '{expression}': libpcap: {e.Message}");
        }
    }

    public void Dispose() => _program.Dispose();
}
