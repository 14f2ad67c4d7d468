using System.Runtime.InteropServices;

namespace KubeCapture.Agent.Capture;

/// <summary>
/// The few libpcap functions the capture loop calls directly, as function pointers resolved from
/// the same library SharpPcap loads: <c>pcap_get_selectable_fd</c>, which SharpPcap does not
/// expose; <c>pcap_dispatch</c>, called once per batch of packets without SharpPcap's marshalling
/// and event path (see <see cref="PacketSink"/>); and <c>pcap_stats</c>, which SharpPcap reads with
/// the wrong layout on 64-bit Linux (see <see cref="KernelCounters"/>).
/// </summary>
internal static unsafe class LibPcapExports
{
    private static readonly nint Library = Load();

    /// <summary><c>int pcap_get_selectable_fd(pcap_t *p)</c></summary>
    public static readonly delegate* unmanaged<nint, int> GetSelectableFd =
        (delegate* unmanaged<nint, int>)Export("pcap_get_selectable_fd");

    /// <summary>
    /// <c>int pcap_dispatch(pcap_t *p, int cnt, pcap_handler callback, u_char *user)</c>: the capture
    /// loop's read. The callback gets each packet where it lies in the kernel's ring, where
    /// <c>pcap_next_ex</c> copies it into a buffer first; called with the GC transition, since the
    /// callback comes back into managed code.
    /// </summary>
    public static readonly delegate* unmanaged<nint, int, delegate* unmanaged<nint, PcapPacketHeader*, byte*, void>, nint, int> Dispatch =
        (delegate* unmanaged<nint, int, delegate* unmanaged<nint, PcapPacketHeader*, byte*, void>, nint, int>)Export("pcap_dispatch");

    /// <summary><c>void pcap_breakloop(pcap_t *p)</c>: ends <c>pcap_dispatch</c> after the packet being handled (it sets a flag).</summary>
    public static readonly delegate* unmanaged[SuppressGCTransition]<nint, void> BreakLoop =
        (delegate* unmanaged[SuppressGCTransition]<nint, void>)Export("pcap_breakloop");

    /// <summary>
    /// <c>int pcap_offline_filter(const struct bpf_program *fp, const struct pcap_pkthdr *h, const u_char *pkt)</c>:
    /// runs a compiled filter on one packet (the flight recorder's trigger). Pure computation, never
    /// blocks nor calls back, so without the GC transition; unlike SharpPcap's BpfProgram.Matches, which
    /// allocates a header object and mallocs per call.
    /// </summary>
    public static readonly delegate* unmanaged[SuppressGCTransition]<nint, PcapPacketHeader*, byte*, int> OfflineFilter =
        (delegate* unmanaged[SuppressGCTransition]<nint, PcapPacketHeader*, byte*, int>)Export("pcap_offline_filter");

    /// <summary><c>int pcap_stats(pcap_t *p, struct pcap_stat *ps)</c></summary>
    public static readonly delegate* unmanaged<nint, uint*, int> Stats =
        (delegate* unmanaged<nint, uint*, int>)Export("pcap_stats");

    /// <summary><c>pcap_t *pcap_open_offline_with_tstamp_precision(const char *fname, u_int precision, char *errbuf)</c></summary>
    public static readonly delegate* unmanaged<byte*, uint, byte*, nint> OpenOffline =
        (delegate* unmanaged<byte*, uint, byte*, nint>)Export("pcap_open_offline_with_tstamp_precision");

    /// <summary><c>int pcap_next_ex(...)</c> with the GC transition, for files: reading may block on the disk.</summary>
    public static readonly delegate* unmanaged<nint, nint*, nint*, int> NextEx =
        (delegate* unmanaged<nint, nint*, nint*, int>)Export("pcap_next_ex");

    /// <summary><c>char *pcap_geterr(pcap_t *p)</c></summary>
    public static readonly delegate* unmanaged<nint, nint> GetError =
        (delegate* unmanaged<nint, nint>)Export("pcap_geterr");

    /// <summary><c>int pcap_datalink(pcap_t *p)</c></summary>
    public static readonly delegate* unmanaged<nint, int> Datalink =
        (delegate* unmanaged<nint, int>)Export("pcap_datalink");

    /// <summary><c>const char *pcap_datalink_val_to_name(int dlt)</c>: NULL for a link type libpcap does not know.</summary>
    public static readonly delegate* unmanaged<int, nint> DatalinkName =
        (delegate* unmanaged<int, nint>)Export("pcap_datalink_val_to_name");

    /// <summary><c>const char *pcap_datalink_val_to_description(int dlt)</c></summary>
    public static readonly delegate* unmanaged<int, nint> DatalinkDescription =
        (delegate* unmanaged<int, nint>)Export("pcap_datalink_val_to_description");

    /// <summary><c>FILE *pcap_file(pcap_t *p)</c>: the savefile's stream.</summary>
    public static readonly delegate* unmanaged<nint, nint> File =
        (delegate* unmanaged<nint, nint>)Export("pcap_file");

    /// <summary><c>void pcap_close(pcap_t *p)</c></summary>
    public static readonly delegate* unmanaged<nint, void> Close =
        (delegate* unmanaged<nint, void>)Export("pcap_close");

    /// <summary>libc's <c>long ftell(FILE *stream)</c>: how far libpcap read into a savefile.</summary>
    public static readonly delegate* unmanaged<nint, long> Tell =
        (delegate* unmanaged<nint, long>)LibcExport("ftell");

    /// <summary>libpcap's name for a link type (EN10MB, LINUX_SLL, IEEE802_11_RADIO...), or null when libpcap does not know it.</summary>
    public static string? LinkTypeName(int linkType) => Marshal.PtrToStringUTF8(DatalinkName(linkType));

    /// <summary>libpcap's description of a link type ("802.11 plus radiotap header"), or null.</summary>
    public static string? LinkTypeDescription(int linkType) => Marshal.PtrToStringUTF8(DatalinkDescription(linkType));

    private static nint Load()
    {
        foreach (var name in new[] { "libpcap.so.0.8", "libpcap.so.1", "libpcap.so" })
        {
            if (NativeLibrary.TryLoad(name, out var library))
            {
                return library;
            }
        }

        throw new DllNotFoundException("libpcap (libpcap.so.0.8)");
    }

    private static nint LibcExport(string name) =>
        NativeLibrary.TryLoad("libc.so.6", out var libc) && NativeLibrary.TryGetExport(libc, name, out var export)
            ? export
            : throw new EntryPointNotFoundException($"libc has no {name}");

    private static nint Export(string name) =>
        NativeLibrary.TryGetExport(Library, name, out var export)
            ? export
            : throw new EntryPointNotFoundException($"libpcap has no {name}");
}

/// <summary>libpcap's <c>struct pcap_pkthdr</c> on 64-bit Linux: a timeval of two longs, then caplen and len.</summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly struct PcapPacketHeader(long seconds, long microseconds, uint captureLength, uint originalLength)
{
    public readonly long Seconds = seconds;
    public readonly long Microseconds = microseconds;
    public readonly uint CaptureLength = captureLength;
    public readonly uint OriginalLength = originalLength;
}
