using System.Runtime.InteropServices;
using SharpPcap.LibPcap;

namespace KubeCapture.Agent.Capture;

/// <summary>
/// Waits, with a timeout, until libpcap has packets to read. With TPACKET_V3 a blocking
/// <c>pcap_dispatch</c> may wait forever when no packet arrives, so the capture loop reads in
/// non-blocking mode and sleeps in <c>poll(2)</c> on libpcap's selectable descriptor instead: it
/// wakes for packets, and at least every timeout to check the clock and stop requests.
/// </summary>
internal sealed unsafe class PacketReadiness
{
    private const short PollIn = 0x001;
    private readonly int _descriptor;

    public PacketReadiness(PcapHandle handle)
    {
        var added = false;
        handle.DangerousAddRef(ref added);
        try
        {
            _descriptor = LibPcapExports.GetSelectableFd(handle.DangerousGetHandle());
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }

        if (_descriptor < 0)
        {
            throw new InvalidOperationException("libpcap has no selectable descriptor for this device");
        }
    }

    /// <summary>Returns when packets may be ready, or after <paramref name="timeoutMilliseconds"/>.</summary>
    public void Wait(int timeoutMilliseconds)
    {
        var request = new PollRequest { Descriptor = _descriptor, Events = PollIn };
        _ = Native.Poll(&request, 1, timeoutMilliseconds); // EINTR or timeout: the loop checks again
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct PollRequest
    {
        public int Descriptor;
        public short Events;
        public short ReturnedEvents;
    }

    private static class Native
    {
        [DllImport("libc", EntryPoint = "poll", SetLastError = true)]
        public static extern int Poll(PollRequest* requests, ulong count, int timeout);
    }
}
