using System.Buffers.Binary;

namespace KubeCapture.KubectlPlugin.Cluster;

/// <summary>
/// One pcap on stdout out of one or more follow streams of the same capture target. Each stream
/// starts with the pcap header, then whole records; a stream may break anywhere (kube-apiserver
/// ends a request to an extension API after its request timeout). The header is written once, a
/// record only when it arrived whole, and a stream that follows a broken one writes only records
/// later than the last one written (by timestamp): the reader sees one valid pcap, never a torn
/// record or a record twice.
/// </summary>
public sealed class FollowedPcap(Stream output)
{
    private const int HeaderLength = 24;
    private const int RecordHeaderLength = 16;
    private byte[] pending = new byte[65536];
    private int length;
    private bool headerWritten;
    private bool expectHeader = true;
    private bool bigEndian;
    private (uint Seconds, uint Fraction)? last;

    /// <summary>Whole records written so far.</summary>
    public long Records { get; private set; }

    /// <summary>A new stream begins (its header comes first); what was left of a broken record is dropped.</summary>
    public void StartStream()
    {
        length = 0;
        expectHeader = true;
    }

    /// <summary>Bytes of the current stream; writes what they complete. False: the reader closed the pipe.</summary>
    public async Task<bool> WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        Append(data.Span);
        var offset = 0;
        var write = new List<ReadOnlyMemory<byte>>();
        while (true)
        {
            if (expectHeader)
            {
                if (length - offset < HeaderLength)
                {
                    break;
                }

                var magic = BinaryPrimitives.ReadUInt32LittleEndian(pending.AsSpan(offset));
                bigEndian = magic is not (0xa1b2c3d4 or 0xa1b23c4d);
                if (!headerWritten)
                {
                    write.Add(pending.AsMemory(offset, HeaderLength).ToArray());
                    headerWritten = true;
                }

                offset += HeaderLength;
                expectHeader = false;
                continue;
            }

            if (length - offset < RecordHeaderLength)
            {
                break;
            }

            var record = pending.AsSpan(offset);
            var captured = (int)Read(record[8..]);
            if (length - offset < RecordHeaderLength + captured)
            {
                break;
            }

            var stamp = (Read(record), Read(record[4..]));
            if (last is null || stamp.CompareTo(last.Value) > 0)
            {
                write.Add(pending.AsMemory(offset, RecordHeaderLength + captured).ToArray());
                last = stamp;
                Records++;
            }

            offset += RecordHeaderLength + captured;
        }

        Array.Copy(pending, offset, pending, 0, length - offset);
        length -= offset;
        try
        {
            foreach (var chunk in write)
            {
                await output.WriteAsync(chunk, cancellationToken);
            }

            await output.FlushAsync(cancellationToken);
            return true;
        }
        catch (IOException)
        {
            return false; // the reader closed the pipe: what it read is whole records up to there
        }
    }

    private uint Read(ReadOnlySpan<byte> bytes) =>
        bigEndian ? BinaryPrimitives.ReadUInt32BigEndian(bytes) : BinaryPrimitives.ReadUInt32LittleEndian(bytes);

    private void Append(ReadOnlySpan<byte> data)
    {
        if (length + data.Length > pending.Length)
        {
            Array.Resize(ref pending, Math.Max(pending.Length * 2, length + data.Length));
        }

        data.CopyTo(pending.AsSpan(length));
        length += data.Length;
    }
}
