using System.Diagnostics;
using System.Runtime.InteropServices;
using KubeCapture.Agent.Summary;
using PacketDotNet;
using SharpPcap;
using SharpPcap.LibPcap;

namespace KubeCapture.Agent.Capture;

/// <summary>
/// The capture loop: one opened libpcap device, read with <c>pcap_dispatch</c> called directly
/// (<see cref="LibPcapExports"/>) in batches of up to <see cref="PacketsPerClockCheck"/> packets, each
/// packet taken where it lies in the kernel's ring by the <see cref="PacketSink"/>: copied once into
/// the <see cref="PcapWriter"/>'s buffer and shown once to the <see cref="TcpSummary"/>. No managed object is allocated per packet, so the
/// GC stays idle and memory stays flat however long the capture runs. Stops at the first limit
/// (count, bytes, duration) or on <see cref="RequestStop"/>, and always finishes the pcap with whole
/// records. The device is closed as soon as the capture ends, so its kernel ring (the -B buffer) is
/// not held while the caller writes the manifest and the report.
/// </summary>
public sealed class CaptureSession : IDisposable
{
    private const int ReadTimeoutMilliseconds = 100;

    /// <summary>
    /// While packets keep coming the clock is read once per this many packets, one
    /// <c>pcap_dispatch</c> (and whenever the ring runs empty): reading it per packet cost more than
    /// the rest of the loop. At the fastest rate a veth delivers (~400k packets/s) this is a check
    /// every ~0.2 ms.
    /// </summary>
    private const int PacketsPerClockCheck = 64;
    private static readonly long FlushIntervalTicks = Stopwatch.Frequency; // at least once a second
    private static readonly long DrainTicks = Stopwatch.Frequency * (ReadTimeoutMilliseconds + 20) / 1000;

    private readonly CaptureOptions _options;
    private readonly LibPcapLiveDevice _device;
    private readonly TcpSummary? _summary;
    private readonly WidenedFilter? _widened;
    private (long Received, long Dropped, long InterfaceDropped)? _final;
    private readonly PacketReadiness _readiness;
    private readonly (long Received, long Dropped, long InterfaceDropped) _baseline;
    private readonly DateTime _opened;
    private volatile int _stopRequested = -1;
    private long _packets;
    private long _bytes;

    private CaptureSession(CaptureOptions options, LibPcapLiveDevice device, WidenedFilter? widened, DateTime opened)
    {
        _options = options;
        _opened = opened;
        _device = device;
        _widened = widened;
        LinkType = device.LinkType;
        _readiness = new PacketReadiness(device.Handle);
        _summary = options.Summary ? new TcpSummary(LinkType, LocalAddresses.OfThisHost()) : null;

        // The kernel counts every packet from the moment the socket is bound, before the filter is
        // installed: without this baseline, "received by filter" included packets the filter rejects.
        _baseline = KernelCounters.Read(device.Handle) ?? (0, 0, 0);
    }

    public LinkLayers LinkType { get; }

    /// <summary>Packets written so far (readable from another thread).</summary>
    public long Packets => Volatile.Read(ref _packets);

    /// <summary>Bytes of pcap written so far (readable from another thread).</summary>
    public long Bytes => Volatile.Read(ref _bytes);

    /// <summary>
    /// Opens the interface and installs the filter. Throws <see cref="CaptureSetupException"/> with a
    /// message for people when the interface, the filter or the privilege is wrong.
    /// </summary>
    public static CaptureSession Open(CaptureOptions options)
    {
        var device = InterfaceCatalog.Find(options.Interface);
        // The capture starts when the socket is opened: the kernel queues packets from then on, before
        // the loop runs, and the manifest's start must not come after the first packet it holds.
        var opened = DateTime.UtcNow;
        try
        {
            // A file capability cap_net_raw+p (the image) is permitted but not yet effective.
            NetRawCapability.RaiseEffective();
            device.Open(new DeviceConfiguration
            {
                Mode = DeviceModes.None,
                Snaplen = EffectiveSnaplen(options.Snaplen),
                ReadTimeout = ReadTimeoutMilliseconds,
                BufferSize = options.BufferBytes,
            });
            device.NonBlockingMode = true;
        }
        catch (PcapException e)
        {
            device.Dispose();
            throw CaptureSetupException.FromOpenFailure(options.Interface, e.Message);
        }

        WidenedFilter? widened;
        try
        {
            // Installed even when empty, as tcpdump does: the compiled program returns the snaplen, so
            // the kernel copies only that much of each packet into the ring. Without one it copies
            // whole packets, and BIG TCP or TSO packets of up to 185 KB fill it within a few hundred.
            // Each expression is compiled once: the widened one for the kernel (then the user's for the
            // packet-by-packet check), or else exactly the user's.
            widened = Widen(options, device);
            if (widened is null)
            {
                device.Filter = options.Filter;
            }
        }
        catch (PcapException e)
        {
            device.Dispose();
            throw new CaptureSetupException($"invalid filter '{options.Filter}': {e.Message}");
        }

        return new CaptureSession(options, device, widened, opened);
    }

    /// <summary>The user's filter widened to the ICMP errors and jumbograms of its flows (<see cref="WidenedFilter"/>), installed; null without a filter, with --exact-filter, or where the filter or the link type cannot take the additions (the caller then installs exactly the user's).</summary>
    private static WidenedFilter? Widen(CaptureOptions options, LibPcapLiveDevice device)
    {
        if (!options.WidenFilter || options.Filter.Length == 0)
        {
            return null;
        }

        WidenedFilter widened;
        try
        {
            widened = WidenedFilter.Create(device.Handle, device.LinkType, options.Filter, EffectiveSnaplen(options.Snaplen));
        }
        catch (PcapException)
        {
            return null; // the user's filter does not compile: installing it says why
        }

        try
        {
            device.Filter = widened.Expression;
            return widened;
        }
        catch (PcapException)
        {
            widened.Dispose();
            return null; // exactly the user's, as tcpdump would run it
        }
    }

    /// <summary>-s 0 means the whole packet, as in tcpdump.</summary>
    public static int EffectiveSnaplen(int snaplen) => snaplen == 0 ? CaptureOptions.MaxSnaplen : snaplen;

    /// <summary>Asks the loop to stop; it finishes the pcap with what it has. Safe from any thread.</summary>
    public void RequestStop(StopReason reason) => Interlocked.CompareExchange(ref _stopRequested, (int)reason, -1);

    /// <summary>The summary so far, for progress reports (call from the capture thread or after it ends).</summary>
    public TcpSummaryReport? SummarySoFar() => _summary?.Report();

    /// <summary>
    /// libpcap's counters so far: received, dropped by the kernel, dropped by the interface (call from the
    /// capture thread); once <see cref="Run"/> has closed the capture, its final counters.
    /// </summary>
    public (long Received, long Dropped, long InterfaceDropped) StatisticsSoFar() => _final ?? ReadStatistics();

    /// <summary>Runs the capture until a limit or a stop request, writing to <paramref name="writer"/> (a pcap, or the flight recorder's ring).</summary>
    public CaptureOutcome Run(IRecordSink writer, Action? onFlush = null)
    {
        var started = _opened;
        var remaining = _options.Duration - (DateTime.UtcNow - started); // the window counts from the socket's opening
        var deadline = Stopwatch.GetTimestamp() + (long)(Math.Max(0, remaining.TotalSeconds) * Stopwatch.Frequency);
        var nextFlush = Stopwatch.GetTimestamp() + FlushIntervalTicks;
        var maxPackets = _options.MaxPackets ?? long.MaxValue;
        StopReason reason;
        string? error = null;
        var handle = _device.Handle;
        var added = false;
        handle.DangerousAddRef(ref added); // pcap_dispatch gets the raw pcap_t*: keep it alive meanwhile
        try
        {
            reason = Loop(handle.DangerousGetHandle(), writer, deadline, WindowEnd(started), maxPackets, ref nextFlush, onFlush, out error);
        }
        catch (IOException e)
        {
            reason = StopReason.Error;
            error = $"writing the pcap failed: {e.Message}";
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }

        if (error is not null)
        {
            _summary?.EndedEarly(error, live: true);
        }

        var ended = DateTime.UtcNow;
        var statistics = ReadStatistics();
        _final = statistics;
        _device.Close();
        return new CaptureOutcome(started, ended, reason, error, statistics.Received, statistics.Dropped, statistics.InterfaceDropped, _summary?.Report(),
            _widened?.Expression, _widened?.Added ?? 0, _widened?.Discarded ?? 0);
    }

    /// <summary>The end of the capture window as packet timestamps count it: microseconds since the epoch.</summary>
    private long WindowEnd(DateTime started) =>
        ((started.Ticks - DateTime.UnixEpoch.Ticks) / TimeSpan.TicksPerMicrosecond) + (long)(_options.Duration.TotalMilliseconds * 1000);

    private StopReason Loop(nint pcap, IRecordSink writer, long deadline, long windowEndMicroseconds, long maxPackets, ref long nextFlush, Action? onFlush, out string? error)
    {
        error = null;
        long drainUntil = 0;
        StopReason? ending = null;
        using var sink = new PacketSink(pcap, writer, _summary, _widened, maxPackets, windowEndMicroseconds);
        while (true)
        {
            // Stop requests, the deadline and the flush interval are looked at once per dispatch of
            // up to PacketsPerClockCheck packets, and whenever the ring runs empty.
            var now = Stopwatch.GetTimestamp();
            if (ending is null)
            {
                var stop = _stopRequested;
                ending = stop >= 0 ? (StopReason)stop : now >= deadline ? StopReason.Duration : null;
                sink.WindowClosed = ending == StopReason.Duration;

                // Packets the kernel already holds may sit in a ring block it hands over only after
                // the read timeout (TPACKET_V3): read on for one timeout more, or they are lost.
                drainUntil = now + DrainTicks;
            }
            else if (now >= drainUntil)
            {
                return ending.Value;
            }

            if (now >= nextFlush)
            {
                writer.Flush();
                onFlush?.Invoke();
                nextFlush = now + FlushIntervalTicks;
            }

            var status = sink.Dispatch(PacketsPerClockCheck);
            Volatile.Write(ref _packets, writer.Packets);
            Volatile.Write(ref _bytes, writer.BytesWritten);
            if (sink.Limit is { } limit)
            {
                return limit;
            }

            if (status == 0)
            {
                _readiness.Wait(ReadTimeoutMilliseconds); // nothing to read yet
            }
            else if (status < 0)
            {
                error = $"libpcap stopped reading: {_device.LastError}";
                return StopReason.Error;
            }
        }
    }

    /// <summary>libpcap's counters since the filter was installed (not SharpPcap's Statistics: see KernelCounters).</summary>
    private (long Received, long Dropped, long InterfaceDropped) ReadStatistics() =>
        KernelCounters.Read(_device.Handle) is { } now
            ? (now.Received - _baseline.Received, now.Dropped - _baseline.Dropped, now.InterfaceDropped - _baseline.InterfaceDropped)
            : (0, 0, 0);

    public void Dispose()
    {
        _widened?.Dispose();
        _device.Dispose();
    }
}

/// <summary>How a capture ended, with libpcap's counters read just before the device closed.</summary>
public sealed record CaptureOutcome(
    DateTime Started,
    DateTime Ended,
    StopReason StopReason,
    string? Error,
    long PacketsReceived,
    long PacketsDroppedByKernel,
    long PacketsDroppedByInterface,
    TcpSummaryReport? Summary,
    string? CaptureFilter = null,
    long PacketsAdded = 0,
    long PacketsDiscarded = 0);
