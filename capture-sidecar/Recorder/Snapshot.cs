using System.Buffers.Binary;
using KubeCapture.Agent.Capture;
using KubeCapture.Agent.Summary;

namespace KubeCapture.Agent.Recorder;

/// <summary>
/// One snapshot being written: a pcap (the capture's <see cref="PcapWriter"/>, same snaplen and link
/// type) into its <see cref="SnapshotOutput"/> (a file, or an upload), first the ring's records from
/// the window's start, then the packets that arrive until the window's end. Its own
/// <see cref="TcpSummary"/> reads the same packets for the window's findings. A snapshot that cannot
/// be written (disk full, the upload failed) keeps the whole records written before and says why.
/// </summary>
internal sealed class Snapshot : IDisposable
{
    private readonly PcapWriter _writer;
    private readonly TcpSummary _summary;
    private long _first = long.MinValue;
    private long _last = long.MinValue;

    public Snapshot(int number, SnapshotOutput output, uint linkType, int snaplen, TcpSummary summary, long start, long end, long maxBytes)
    {
        Number = number;
        Output = output;
        Start = start;
        End = end;
        _summary = summary;
        _writer = new PcapWriter(output.Stream, linkType, snaplen, maxBytes);
    }

    public int Number { get; }

    public SnapshotOutput Output { get; }

    /// <summary>The window's start and end, microseconds since the epoch.</summary>
    public long Start { get; }

    public long End { get; }

    public long Packets => _writer.Packets;

    /// <summary>A packet did not fit in its most bytes (<see cref="KubeCapture.Contracts.Recorder.RecorderLimits.SnapshotMaxBytes"/>): it ends there.</summary>
    public bool Full { get; private set; }

    /// <summary>What went wrong writing it, if anything: nothing more is written after.</summary>
    public string? Error { get; private set; }

    public long? FirstPacket => _first == long.MinValue ? null : _first;

    public long? LastPacket => _last == long.MinValue ? null : _last;

    /// <summary>Writes one pcap record (header and data, as the ring holds them) if it falls within the window.</summary>
    public void WriteRecord(ReadOnlySpan<byte> record)
    {
        var time = PacketRing.TimeOf(record);
        var captured = record[PcapWriter.RecordHeaderLength..];
        Write(time, BinaryPrimitives.ReadUInt32LittleEndian(record), BinaryPrimitives.ReadUInt32LittleEndian(record[4..]), captured, BinaryPrimitives.ReadUInt32LittleEndian(record[12..]));
    }

    /// <summary>Writes one packet if it falls within the window.</summary>
    public void Write(long time, uint seconds, uint microseconds, ReadOnlySpan<byte> data, uint originalLength)
    {
        if (Error is not null || Full || time < Start || time > End)
        {
            return;
        }

        try
        {
            if (!_writer.TryWrite(seconds, microseconds, data, originalLength))
            {
                Full = true;
                return;
            }
        }
        catch (IOException e)
        {
            Fail(e);
            return;
        }

        _summary.Observe(data, originalLength, time);
        if (_first == long.MinValue)
        {
            _first = time;
        }

        _last = time;
    }

    /// <summary>Hands what is assembled to the file (once a second, so the file grows as it is written).</summary>
    public void Flush()
    {
        if (Error is not null)
        {
            return;
        }

        try
        {
            _writer.Flush();
        }
        catch (IOException e)
        {
            Fail(e);
        }
    }

    /// <summary>Finishes the file: its SHA-256, its size, and the findings of its packets.</summary>
    public (string Sha256, long Bytes, TcpSummaryReport Summary) Finish()
    {
        string sha256;
        try
        {
            sha256 = _writer.Finish();
        }
        catch (IOException e)
        {
            Fail(e);
            sha256 = Output.HashWritten(); // cut back to its last whole record: what it holds
        }

        return (sha256, _writer.BytesFlushed, _summary.Report());
    }

    private void Fail(IOException e)
    {
        Error ??= $"writing {Output.Name} failed: {e.Message}; the {_writer.Packets} packets before are in it";
        _summary.EndedEarly(Error, live: true);
    }

    public void Dispose()
    {
        _writer.Dispose();
        Output.Stream.Dispose();
    }
}
