using System.Runtime.InteropServices;
using System.Text;

namespace KubeCapture.Agent.Capture;

/// <summary>
/// A capture file read by libpcap, as <c>tcpdump -r</c> reads it (pcap in either byte order, with
/// microsecond or nanosecond timestamps, and pcapng): one packet at a time, and, when reading stops
/// before the end, libpcap's own reason ("truncated dump file; ...", "invalid packet capture length
/// ..."), how many packets came before it and how far into the file it got. Timestamps are
/// microseconds since the epoch (libpcap scales nanosecond files).
/// </summary>
public sealed unsafe class PcapFileReader : IDisposable
{
    private const int ErrorBufferSize = 256; // PCAP_ERRBUF_SIZE
    private const uint MicrosecondPrecision = 0; // PCAP_TSTAMP_PRECISION_MICRO
    private nint _pcap;

    private PcapFileReader(nint pcap, string path, long size)
    {
        _pcap = pcap;
        Path = path;
        FileBytes = size;
        LinkType = LibPcapExports.Datalink(pcap);
    }

    public string Path { get; }

    /// <summary>The DLT_ value libpcap gives the file's link type.</summary>
    public int LinkType { get; }

    /// <summary>The file's size.</summary>
    public long FileBytes { get; }

    /// <summary>Packets read so far.</summary>
    public long Packets { get; private set; }

    /// <summary>libpcap's reason when reading stopped before the end of the file; null while all is well.</summary>
    public string? Error { get; private set; }

    /// <summary>How far into the file libpcap read (at the end, or where it stopped).</summary>
    public long BytesRead => _pcap == 0 ? FileBytes : Math.Max(0, LibPcapExports.Tell(LibPcapExports.File(_pcap)));

    /// <summary>Opens <paramref name="path"/>; throws <see cref="UnreadableCaptureException"/> with libpcap's reason when it is not a capture libpcap can open.</summary>
    public static PcapFileReader Open(string path)
    {
        var size = new FileInfo(path).Length;
        var name = Encoding.UTF8.GetBytes(path + "\0");
        var error = stackalloc byte[ErrorBufferSize];
        error[0] = 0;
        nint pcap;
        fixed (byte* file = name)
        {
            pcap = LibPcapExports.OpenOffline(file, MicrosecondPrecision, error);
        }

        if (pcap == 0)
        {
            throw new UnreadableCaptureException(Marshal.PtrToStringUTF8((nint)error) ?? "libpcap could not open it");
        }

        return new PcapFileReader(pcap, path, size);
    }

    /// <summary>
    /// The next packet: its captured bytes (valid until the next call), its length on the wire and its
    /// time. False at the end of the file, or when libpcap cannot read on (then <see cref="Error"/> says why).
    /// </summary>
    public bool TryRead(out ReadOnlySpan<byte> data, out uint wireLength, out long timeMicroseconds)
    {
        data = default;
        wireLength = 0;
        timeMicroseconds = 0;
        if (_pcap == 0 || Error is not null)
        {
            return false;
        }

        nint headerPointer = default, dataPointer = default;
        var status = LibPcapExports.NextEx(_pcap, &headerPointer, &dataPointer);
        if (status != 1)
        {
            // -2: the end of the file; -1: an error, with libpcap's message.
            if (status != -2)
            {
                Error = Marshal.PtrToStringUTF8(LibPcapExports.GetError(_pcap)) is { Length: > 0 } message ? message : $"libpcap could not read on (pcap_next_ex returned {status})";
            }

            return false;
        }

        var header = (PcapPacketHeader*)headerPointer;
        data = new ReadOnlySpan<byte>((void*)dataPointer, (int)header->CaptureLength);
        wireLength = header->OriginalLength;
        timeMicroseconds = (header->Seconds * 1_000_000) + header->Microseconds;
        Packets++;
        return true;
    }

    public void Dispose()
    {
        if (_pcap != 0)
        {
            LibPcapExports.Close(_pcap);
            _pcap = 0;
        }
    }
}

/// <summary>A file libpcap cannot open as a capture (its reason in the message).</summary>
public sealed class UnreadableCaptureException(string message) : Exception(message);
