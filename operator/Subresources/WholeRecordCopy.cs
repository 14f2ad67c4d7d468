using System.Buffers.Binary;

namespace KubeCapture.Operator.Subresources;

/// <summary>
/// Copies a live pcap (the file header, then records) from one stream to another, passing on only
/// what arrived whole: a record is written once all its bytes are in. When the source breaks
/// mid-record, what the destination got is still a valid pcap, ending at the last whole record.
/// Holds at most one record beyond its 64 KiB buffer (a record is at most the snaplen, 256 KiB
/// by the policy's bound; anything larger than <see cref="MaxRecord"/> is refused as not a pcap).
/// </summary>
public sealed class WholeRecordCopy
{
    public const int MaxRecord = 16 << 20;
    private const int FileHeaderLength = 24;
    private const int RecordHeaderLength = 16;
    private byte[] buffer = new byte[1 << 16];
    private int length;
    private bool headerSeen;
    private bool bigEndian;

    /// <summary>Bytes written to the destination so far (all of them whole).</summary>
    public long Written { get; private set; }

    /// <summary>Copies until the source ends (true: at a record boundary) or breaks (an exception, after the whole records before it were written).</summary>
    public async Task<bool> CopyAsync(Stream source, Stream destination, CancellationToken cancellationToken)
    {
        while (true)
        {
            if (length == buffer.Length)
            {
                Array.Resize(ref buffer, buffer.Length * 2);
            }

            var read = await source.ReadAsync(buffer.AsMemory(length), cancellationToken);
            if (read == 0)
            {
                return length == 0;
            }

            length += read;
            var whole = WholePrefix();
            if (whole > 0)
            {
                await destination.WriteAsync(buffer.AsMemory(0, whole), cancellationToken);
                await destination.FlushAsync(cancellationToken);
                Written += whole;
                buffer.AsSpan(whole, length - whole).CopyTo(buffer);
                length -= whole;
            }
        }
    }

    /// <summary>How many bytes at the start of the buffer are the file header or whole records.</summary>
    private int WholePrefix()
    {
        var position = 0;
        if (!headerSeen)
        {
            if (length < FileHeaderLength)
            {
                return 0;
            }

            var magic = BinaryPrimitives.ReadUInt32LittleEndian(buffer);
            bigEndian = magic is 0xd4c3b2a1 or 0x4d3cb2a1;
            if (!bigEndian && magic is not (0xa1b2c3d4 or 0xa1b23c4d))
            {
                throw new InvalidDataException($"the relayed stream is not a pcap (magic 0x{magic:x8})");
            }

            headerSeen = true;
            position = FileHeaderLength;
        }

        while (length - position >= RecordHeaderLength)
        {
            var lengthField = buffer.AsSpan(position + 8, 4);
            var captured = bigEndian ? BinaryPrimitives.ReadUInt32BigEndian(lengthField) : BinaryPrimitives.ReadUInt32LittleEndian(lengthField);
            if (captured > MaxRecord)
            {
                throw new InvalidDataException($"the relayed stream has a record of {captured} bytes: not a pcap");
            }

            if (length - position - RecordHeaderLength < captured)
            {
                break;
            }

            position += RecordHeaderLength + (int)captured;
        }

        return position;
    }
}
