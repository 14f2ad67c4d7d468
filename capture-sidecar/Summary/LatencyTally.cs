namespace KubeCapture.Agent.Summary;

/// <summary>
/// Round trips (from the handshakes: the last SYN to the ACK that completes it, one network round trip
/// wherever the capture sits) and response times (from a request's last segment to the response's
/// first, as seen at the capture point) over a capture's connections. Bounded: counts and extremes only.
/// </summary>
internal sealed class LatencyTally
{
    public long RoundTrips { get; private set; }

    public long RoundTripMin { get; private set; } = long.MaxValue;

    public long RoundTripMax { get; private set; }

    public long Responses { get; private set; }

    public long ResponseMin { get; private set; } = long.MaxValue;

    public long ResponseTotal { get; private set; }

    /// <summary>The slowest response, the server that gave it and where the capture was for it.</summary>
    public Response? Slowest { get; private set; }

    public string? SlowestServer { get; private set; }

    public LocalEnd SlowestLocal { get; private set; }

    public void Add(TcpConnection c)
    {
        if (c.HasRoundTrip)
        {
            RoundTrips++;
            RoundTripMin = Math.Min(RoundTripMin, c.RoundTripMicroseconds);
            RoundTripMax = Math.Max(RoundTripMax, c.RoundTripMicroseconds);
        }

        if (c.Slowest is { } slow)
        {
            Responses += c.Responses;
            ResponseTotal += c.ResponseMicrosecondsTotal;
            ResponseMin = Math.Min(ResponseMin, c.FastestResponseMicroseconds);
            if (Slowest is null || slow.Microseconds > Slowest.Microseconds)
            {
                (Slowest, SlowestServer, SlowestLocal) = (slow, c.Server, c.Local);
            }
        }
    }

    public void Add(LatencyTally other)
    {
        RoundTrips += other.RoundTrips;
        RoundTripMin = Math.Min(RoundTripMin, other.RoundTripMin);
        RoundTripMax = Math.Max(RoundTripMax, other.RoundTripMax);
        Responses += other.Responses;
        ResponseTotal += other.ResponseTotal;
        ResponseMin = Math.Min(ResponseMin, other.ResponseMin);
        if (other.Slowest is { } slow && (Slowest is null || slow.Microseconds > Slowest.Microseconds))
        {
            (Slowest, SlowestServer, SlowestLocal) = (slow, other.SlowestServer, other.SlowestLocal);
        }
    }

    /// <summary>The figures for the report (null where nothing was measured).</summary>
    public LatencyReport? ToReport() => RoundTrips + Responses == 0 ? null : new LatencyReport
    {
        RoundTrips = RoundTrips,
        RoundTripMinMicroseconds = RoundTrips > 0 ? RoundTripMin : null,
        RoundTripMaxMicroseconds = RoundTrips > 0 ? RoundTripMax : null,
        Responses = Responses,
        ResponseMinMicroseconds = Responses > 0 ? ResponseMin : null,
        ResponseMeanMicroseconds = Responses > 0 ? ResponseTotal / Responses : null,
        ResponseMaxMicroseconds = Slowest?.Microseconds,
    };

    /// <summary>The sentence of the Info finding <see cref="FindingTypes.Latency"/>.</summary>
    public string Describe()
    {
        var parts = new List<string>();
        parts.Add(RoundTrips > 0
            ? $"network round trip {Range(RoundTripMin, RoundTripMax)} over {Outcomes.Plural(RoundTrips, "handshake")}"
            : "no handshake seen, so no network round trip to compare with");
        if (Slowest is { } slow)
        {
            var where = SlowestLocal switch
            {
                LocalEnd.Client => " (seen at the client: a round trip included)",
                LocalEnd.Server => " (seen at the server: its own time)",
                _ => "",
            };
            parts.Add($"{Outcomes.Plural(Responses, "response")} {Range(ResponseMin, slow.Microseconds)} after the request{where}, on average {Durations.Format(ResponseTotal / Responses)}; the slowest from {SlowestServer}");
        }

        var verdict = RoundTrips > 0 && Slowest is not null ? ". No response was slow against the round trip: nothing points at the application" : "";
        return $"Latency as measured here: {string.Join("; ", parts)}{verdict}.";
    }

    private static string Range(long min, long max) =>
        Durations.Format(min) == Durations.Format(max) ? Durations.Format(max) : $"{Durations.Format(min)} to {Durations.Format(max)}";
}
