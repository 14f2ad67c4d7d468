namespace KubeCapture.Contracts.Capture;

/// <summary>Everything one capture needs: where to listen, what to keep, and when to stop.</summary>
public sealed record CaptureOptions
{
    /// <summary>The largest snaplen libpcap accepts; <c>-s 0</c> means this, as in tcpdump.</summary>
    public const int MaxSnaplen = 262144;

    /// <summary>Headers only: enough for Ethernet/SLL + IPv6 + TCP with options.</summary>
    public const int DefaultSnaplen = 128;

    public static readonly TimeSpan DefaultDuration = TimeSpan.FromSeconds(60);

    /// <summary>No capture may run longer than this, whatever the caller asks.</summary>
    public static readonly TimeSpan MaxDuration = TimeSpan.FromHours(24);

    /// <summary>The pcap's ceiling when none is given, as the resource and the plugin spell it; <see cref="DefaultMaxBytes"/> is the same in bytes.</summary>
    public const string DefaultMaxBytesText = "64Mi";

    public const long DefaultMaxBytes = 64L << 20;

    /// <summary>Smallest useful pcap: file header plus one small record.</summary>
    public const long MinMaxBytes = 1024;

    public const int DefaultBufferBytes = 8 << 20;

    public string Interface { get; init; } = "any";

    public string Filter { get; init; } = "";

    public int Snaplen { get; init; } = DefaultSnaplen;

    /// <summary>Stop after this many packets (tcpdump -c); null: no packet limit.</summary>
    public long? MaxPackets { get; init; }

    public TimeSpan Duration { get; init; } = DefaultDuration;

    /// <summary>Ceiling on the pcap file size, headers included: the file never grows past it.</summary>
    public long MaxBytes { get; init; } = DefaultMaxBytes;

    /// <summary>Kernel capture buffer (tcpdump -B), in bytes.</summary>
    public int BufferBytes { get; init; } = DefaultBufferBytes;

    /// <summary>Whether to decode TCP and build the connection summary.</summary>
    public bool Summary { get; init; } = true;

    /// <summary>Whether a filter also keeps the ICMP errors and IPv6 jumbograms of the flows it selects (<see cref="WidenedFilter"/>); false: exactly the filter, as tcpdump.</summary>
    public bool WidenFilter { get; init; } = true;
}
