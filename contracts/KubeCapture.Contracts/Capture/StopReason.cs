namespace KubeCapture.Contracts.Capture;

/// <summary>Why a capture ended. The wire names (lower case) appear in the manifest and the status.</summary>
public enum StopReason
{
    /// <summary>The packet count limit (-c) was reached.</summary>
    Count,

    /// <summary>The duration elapsed.</summary>
    Duration,

    /// <summary>The next packet would have pushed the pcap past the byte ceiling.</summary>
    Bytes,

    /// <summary>SIGINT or SIGTERM.</summary>
    Signal,

    /// <summary>Stopped early on request (the operator, through the ingest stream).</summary>
    Requested,

    /// <summary>libpcap or the output failed; what was captured before is kept.</summary>
    Error,
}

public static class StopReasonNames
{
    public static string ToWire(this StopReason reason) => reason switch
    {
        StopReason.Count => "count",
        StopReason.Duration => "duration",
        StopReason.Bytes => "bytes",
        StopReason.Signal => "signal",
        StopReason.Requested => "requested",
        _ => "error",
    };

    public static string Describe(this StopReason reason) => reason switch
    {
        StopReason.Count => "packet limit reached",
        StopReason.Duration => "duration elapsed",
        StopReason.Bytes => "byte ceiling reached",
        StopReason.Signal => "interrupted by signal",
        StopReason.Requested => "stopped on request",
        _ => "stopped by an error",
    };
}
