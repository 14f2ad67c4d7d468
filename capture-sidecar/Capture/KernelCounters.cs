using SharpPcap.LibPcap;

namespace KubeCapture.Agent.Capture;

/// <summary>
/// libpcap's statistics (<c>pcap_stats</c>) read with the right layout. SharpPcap 6.3.1 maps
/// <c>struct pcap_stat</c> with IntPtr fields, but on Linux its fields are 32-bit <c>u_int</c>s: on
/// a 64-bit machine its DroppedPackets then reads ps_ifdrop and the bytes after it, so packets
/// the kernel dropped were reported as 0 (5000 received, 4201 dropped by the kernel showed as 0).
/// </summary>
internal static unsafe class KernelCounters
{
    /// <summary>ps_recv, ps_drop and ps_ifdrop as libpcap counts them, or null if libpcap cannot say.</summary>
    public static (long Received, long Dropped, long InterfaceDropped)? Read(PcapHandle handle)
    {
        var added = false;
        handle.DangerousAddRef(ref added);
        try
        {
            // struct pcap_stat { u_int ps_recv, ps_drop, ps_ifdrop; } (room to spare for platforms with more)
            var counters = stackalloc uint[8];
            if (LibPcapExports.Stats(handle.DangerousGetHandle(), counters) != 0)
            {
                return null;
            }

            return (counters[0], counters[1], counters[2]);
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }
}
