using System.Runtime.InteropServices;

namespace KubeCapture.Agent.Capture;

/// <summary>
/// Makes a permitted CAP_NET_RAW effective on the calling thread before libpcap opens its socket,
/// as a capability-aware program does. The agent image gives /app/kubecapture-agent the file
/// capability <c>cap_net_raw+p</c> (permitted, not effective, like Debian's ping), so that a
/// non-root container user that was granted NET_RAW (in its bounding set) gets it permitted at
/// exec, without ambient capabilities (which Kubernetes runtimes never set). Not <c>+ep</c>: the
/// kernel refuses to exec a binary whose effective file capability cannot be granted ("operation
/// not permitted", before the agent runs), whereas with <c>+p</c> a container without NET_RAW
/// starts and gets the agent's own message (capture needs root or CAP_NET_RAW, exit 2).
/// Capabilities are per thread: call this on the thread that opens the device.
/// </summary>
internal static unsafe partial class NetRawCapability
{
    private const uint LinuxCapabilityVersion3 = 0x20080522;
    private const uint NetRaw = 1u << 13;

    /// <summary>True when CAP_NET_RAW is effective on this thread (already, or raised now from the permitted set).</summary>
    public static bool RaiseEffective()
    {
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }

        var header = new CapabilityHeader { Version = LinuxCapabilityVersion3, Pid = 0 };
        var data = stackalloc CapabilityData[2];
        if (CapGet(&header, data) != 0)
        {
            return false;
        }

        if ((data[0].Effective & NetRaw) != 0)
        {
            return true;
        }

        if ((data[0].Permitted & NetRaw) == 0)
        {
            return false;
        }

        data[0].Effective |= NetRaw;
        return CapSet(&header, data) == 0;
    }

    [LibraryImport("libc.so.6", EntryPoint = "capget", SetLastError = true)]
    private static partial int CapGet(CapabilityHeader* header, CapabilityData* data);

    [LibraryImport("libc.so.6", EntryPoint = "capset", SetLastError = true)]
    private static partial int CapSet(CapabilityHeader* header, CapabilityData* data);

    [StructLayout(LayoutKind.Sequential)]
    private struct CapabilityHeader
    {
        public uint Version;
        public int Pid;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct CapabilityData
    {
        public uint Effective;
        public uint Permitted;
        public uint Inheritable;
    }
}
