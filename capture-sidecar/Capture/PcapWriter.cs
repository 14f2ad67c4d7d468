using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace KubeCapture.Agent.Capture;

/// <summary>
/// Writes the classic libpcap file format (magic a1b2c3d4, version 2.4, microsecond timestamps)
/// to any stream: a local file, or the upload stream to the operator's ingest.
/// Records are assembled whole in one buffer and only whole records are ever handed to the stream,
/// so a stop at any point leaves a valid file. The SHA-256 is computed over exactly the bytes handed
/// to the stream, on the way, so the file is never read twice.
/// </summary>
public sealed class PcapWriter : IRecordSink, IDisposable
{
    public const int FileHeaderLength = 24;
    public const int RecordHeaderLength = KubeCapture.Contracts.Recorder.RecorderLimits.RecordHeaderLength;

    private readonly Stream _output;
    private readonly byte[] _buffer;
    private readonly long _maxBytes;
    private readonly IncrementalHash _sha256 = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private int _used;
    private long _packetsFlushed;
    private bool _finished;

    /// <param name="output">Where the pcap goes; the writer does not own it.</param>
    /// <param name="linkType">The DLT_ value of the capture (1 Ethernet, 113 Linux cooked, ...).</param>
    /// <param name="snaplen">The snaplen recorded in the file header.</param>
    /// <param name="maxBytes">The file never grows past this many bytes.</param>
    /// <param name="bufferBytes">How much is assembled before one write to the stream.</param>
    public PcapWriter(Stream output, uint linkType, int snaplen, long maxBytes, int bufferBytes = 256 * 1024)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBytes, FileHeaderLength);
        ArgumentOutOfRangeException.ThrowIfLessThan(snaplen, 1);
        bufferBytes = Math.Max(bufferBytes, FileHeaderLength + RecordHeaderLength + snaplen);
        _output = output;
        _maxBytes = maxBytes;
        _buffer = GC.AllocateUninitializedArray<byte>(bufferBytes, pinned: true);
        var header = _buffer.AsSpan(0, FileHeaderLength);
        BinaryPrimitives.WriteUInt32LittleEndian(header, 0xa1b2c3d4);
        BinaryPrimitives.WriteUInt16LittleEndian(header[4..], 2);
        BinaryPrimitives.WriteUInt16LittleEndian(header[6..], 4);
        BinaryPrimitives.WriteInt32LittleEndian(header[8..], 0); // thiszone: timestamps are UTC
        BinaryPrimitives.WriteUInt32LittleEndian(header[12..], 0); // sigfigs
        BinaryPrimitives.WriteUInt32LittleEndian(header[16..], (uint)snaplen);
        BinaryPrimitives.WriteUInt32LittleEndian(header[20..], linkType);
        _used = FileHeaderLength;
        BytesWritten = FileHeaderLength;
    }

    /// <summary>Packets accepted so far.</summary>
    public long Packets { get; private set; }

    /// <summary>Size of the pcap so far, file header included (accepted, perhaps not yet flushed).</summary>
    public long BytesWritten { get; private set; }

    /// <summary>Bytes handed to the output stream so far.</summary>
    public long BytesFlushed { get; private set; }

    /// <summary>
    /// Appends one record. Returns false, writing nothing, when the record would take the file past
    /// the byte ceiling.
    /// </summary>
    public bool TryWrite(uint seconds, uint microseconds, ReadOnlySpan<byte> data, uint originalLength)
    {
        var recordLength = RecordHeaderLength + data.Length;
        if (BytesWritten + recordLength > _maxBytes)
        {
            return false;
        }

        if (_used + recordLength > _buffer.Length)
        {
            Flush();
        }

        // The record header is four little-endian 32-bit fields: written as two 64-bit ones, after
        // the one bounds check of the record's span (this runs for every packet captured).
        var record = _buffer.AsSpan(_used, recordLength);
        ref var start = ref MemoryMarshal.GetReference(record);
        Unsafe.WriteUnaligned(ref start, LittleEndian(seconds | ((ulong)microseconds << 32)));
        Unsafe.WriteUnaligned(ref Unsafe.Add(ref start, 8), LittleEndian((uint)data.Length | ((ulong)originalLength << 32)));
        data.CopyTo(record[RecordHeaderLength..]);
        _used += recordLength;
        BytesWritten += recordLength;
        Packets++;
        return true;
    }

    /// <summary>Two little-endian 32-bit fields, the first in the low half, as they lie in the file.</summary>
    private static ulong LittleEndian(ulong fields) => BitConverter.IsLittleEndian ? fields : BinaryPrimitives.ReverseEndianness(fields);

    /// <summary>
    /// Hands every complete record assembled so far to the output stream. If the stream fails
    /// (disk full), a seekable stream is cut back to the last whole record, the records of the failed
    /// write are dropped from the counts, and the exception is rethrown: the file stays valid and
    /// <see cref="Finish"/> still returns the SHA-256 of exactly what it holds.
    /// </summary>
    public void Flush()
    {
        if (_used == 0)
        {
            return;
        }

        var chunk = _buffer.AsSpan(0, _used);
        try
        {
            _output.Write(chunk);
        }
        catch (IOException)
        {
            // Keep the file header (still at the start of the buffer) if it never reached the stream.
            _used = BytesFlushed == 0 ? FileHeaderLength : 0;
            Packets = _packetsFlushed;
            BytesWritten = BytesFlushed + _used;
            try
            {
                if (_output.CanSeek)
                {
                    _output.SetLength(BytesFlushed);
                }
            }
            catch (IOException)
            {
                // cutting back failed too: the original error is the one to report
            }

            throw;
        }

        _sha256.AppendData(chunk);
        BytesFlushed += _used;
        _packetsFlushed = Packets;
        _used = 0;
    }

    /// <summary>Flushes the last records and returns the SHA-256 of the whole file, lower-case hex.</summary>
    public string Finish()
    {
        if (_finished)
        {
            throw new InvalidOperationException("the pcap is already finished");
        }

        Flush();
        _output.Flush();
        _finished = true;
        return Convert.ToHexStringLower(_sha256.GetHashAndReset());
    }

    public void Dispose() => _sha256.Dispose();
}
