using SharpPcap.LibPcap;

namespace KubeCapture.Agent.Capture;

/// <summary>
/// A filter compiled by libpcap, run on packets already captured (<c>pcap_offline_filter</c>), in the
/// capture loop: the user's filter checking what the widening let through, the recorder's trigger
/// filter. Nothing is allocated per packet (SharpPcap's <c>BpfProgram.Matches</c> allocates a header
/// and mallocs on every call), and the filter sees the packet's length on the wire, as the kernel's
/// does (<c>len</c>, <c>greater</c>, <c>less</c> read it), not the snaplen's cut.
/// </summary>
public sealed class CompiledFilter(BpfProgram program) : IDisposable
{
    /// <summary>Compiled for an open capture (its link type and snaplen).</summary>
    public static CompiledFilter For(PcapHandle handle, string expression) => new(BpfProgram.Create(handle, expression));

    /// <summary>Compiled for a link type alone.</summary>
    public static CompiledFilter For(PacketDotNet.LinkLayers link, string expression) => new(BpfProgram.Create(link, expression));

    /// <summary>Whether the filter selects the packet whose captured bytes are <paramref name="frame"/>, <paramref name="wireLength"/> bytes long on the wire.</summary>
    public unsafe bool Matches(ReadOnlySpan<byte> frame, uint wireLength)
    {
        var header = new PcapPacketHeader(0, 0, (uint)frame.Length, Math.Max(wireLength, (uint)frame.Length));
        fixed (byte* data = frame)
        {
            return LibPcapExports.OfflineFilter(program.DangerousGetHandle(), &header, data) != 0;
        }
    }

    public void Dispose() => program.Dispose();
}
