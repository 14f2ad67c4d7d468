using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using KubeCapture.Agent.Summary;

namespace KubeCapture.Agent.Capture;

/// <summary>
/// Where libpcap hands each captured packet, from <c>pcap_dispatch</c>'s callback: straight from the
/// kernel's ring (<c>pcap_next_ex</c> first copied every packet into a buffer of its own), through the
/// widened filter's check, into the <see cref="IRecordSink"/> (the pcap or the recorder's ring: the one copy) and the
/// <see cref="TcpSummary"/>. A limit reached (the byte ceiling, the packet count) or an exception
/// stops the dispatch with <c>pcap_breakloop</c>; nothing may unwind through libpcap's frames, so an
/// exception is kept and rethrown by <see cref="Dispatch"/> once libpcap has returned.
/// </summary>
internal sealed unsafe class PacketSink : IDisposable
{
    private readonly nint _pcap;
    private readonly IRecordSink _writer;
    private readonly TcpSummary? _summary;
    private readonly WidenedFilter? _widened;
    private readonly long _maxPackets;
    private readonly long _windowEndMicroseconds;
    private GCHandle _self;
    private ExceptionDispatchInfo? _fault;

    public PacketSink(nint pcap, IRecordSink writer, TcpSummary? summary, WidenedFilter? widened, long maxPackets, long windowEndMicroseconds)
    {
        _pcap = pcap;
        _writer = writer;
        _summary = summary;
        _widened = widened;
        _maxPackets = maxPackets;
        _windowEndMicroseconds = windowEndMicroseconds;
        _self = GCHandle.Alloc(this);
    }

    /// <summary>Set once the capture window closed: packets stamped after its end (read while the ring drains) are not kept.</summary>
    public bool WindowClosed { get; set; }

    /// <summary>Why the sink stopped the dispatch: <see cref="StopReason.Bytes"/> or <see cref="StopReason.Count"/>; null while it takes packets.</summary>
    public StopReason? Limit { get; private set; }

    /// <summary>
    /// Hands up to <paramref name="count"/> packets the kernel already holds to the sink. Returns how
    /// many libpcap processed (0: the ring is empty), <c>PCAP_ERROR_BREAK</c> (-2) when the sink
    /// stopped it (see <see cref="Limit"/>), or another negative number on libpcap's error.
    /// </summary>
    public int Dispatch(int count)
    {
        var status = LibPcapExports.Dispatch(_pcap, count, &OnPacket, GCHandle.ToIntPtr(_self));
        _fault?.Throw();
        return status;
    }

    [UnmanagedCallersOnly]
    private static void OnPacket(nint user, PcapPacketHeader* header, byte* data)
    {
        var sink = Unsafe.As<PacketSink>(GCHandle.FromIntPtr(user).Target!);
        try
        {
            sink.Take(header, data);
        }
        catch (Exception e)
        {
            sink._fault = ExceptionDispatchInfo.Capture(e);
            LibPcapExports.BreakLoop(sink._pcap);
        }
    }

    private void Take(PcapPacketHeader* header, byte* data)
    {
        var time = (header->Seconds * 1_000_000) + header->Microseconds;
        if (WindowClosed && time > _windowEndMicroseconds)
        {
            return; // arrived after the capture window closed, while its last packets were drained
        }

        var packet = new ReadOnlySpan<byte>(data, (int)header->CaptureLength);
        if (_widened is { } widened && !widened.Keep(packet, header->OriginalLength))
        {
            return; // let through by the widening, about another flow
        }

        if (!_writer.TryWrite((uint)header->Seconds, (uint)header->Microseconds, packet, header->OriginalLength))
        {
            Stop(StopReason.Bytes);
            return;
        }

        _summary?.Observe(packet, header->OriginalLength, time);
        if (_writer.Packets >= _maxPackets)
        {
            Stop(StopReason.Count);
        }
    }

    private void Stop(StopReason limit)
    {
        Limit = limit;
        LibPcapExports.BreakLoop(_pcap);
    }

    public void Dispose()
    {
        if (_self.IsAllocated)
        {
            _self.Free();
        }
    }
}
