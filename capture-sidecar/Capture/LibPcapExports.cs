using System.Runtime.InteropServices;

namespace KubeCapture.Agent.Capture;

/// <summary>
/// The few libpcap functions the capture loop calls directly, as function pointers resolved from
/// the same library SharpPcap loads: <c>pcap_get_selectable_fd</c>, which SharpPcap does not
/// expose; <c>pcap_next_ex</c>, called once per packet without SharpPcap's marshalling
/// (a <c>SafeHandle</c> add-ref/release and a GC transition on every call); and <c>pcap_stats</c>,
/// which SharpPcap reads with the wrong layout on 64-bit Linux (see <see cref="KernelCounters"/>).
/// </summary>
internal static unsafe class LibPcapExports
{
    private static readonly nint Library = Load();

    /// <summary><c>int pcap_get_selectable_fd(pcap_t *p)</c></summary>
    public static readonly delegate* unmanaged<nint, int> GetSelectableFd =
        (delegate* unmanaged<nint, int>)Export("pcap_get_selectable_fd");

    /// <summary>
    /// <c>int pcap_next_ex(pcap_t *p, struct pcap_pkthdr **header, const u_char **data)</c>, in
    /// non-blocking mode only: it then never sleeps (at most a <c>poll</c> with a zero timeout when
    /// the ring is empty) and never calls back into managed code, which is what makes it safe to
    /// call without the GC transition.
    /// </summary>
    public static readonly delegate* unmanaged[SuppressGCTransition]<nint, nint*, nint*, int> NextExNonBlocking =
        (delegate* unmanaged[SuppressGCTransition]<nint, nint*, nint*, int>)Export("pcap_next_ex");

    /// <summary><c>int pcap_stats(pcap_t *p, struct pcap_stat *ps)</c></summary>
    public static readonly delegate* unmanaged<nint, uint*, int> Stats =
        (delegate* unmanaged<nint, uint*, int>)Export("pcap_stats");

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

    private static nint Export(string name) =>
        NativeLibrary.TryGetExport(Library, name, out var export)
            ? export
            : throw new EntryPointNotFoundException($"libpcap has no {name}");
}
