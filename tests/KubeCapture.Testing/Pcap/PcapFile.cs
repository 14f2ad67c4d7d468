using System.Buffers.Binary;

namespace KubeCapture.Testing.Pcap;

/// <summary>One record of a classic pcap file.</summary>
public sealed record PcapRecord(uint Seconds, uint Microseconds, uint CapturedLength, uint OriginalLength, byte[] Data);

/// <summary>
/// A classic pcap file read independently of the agent's writer (little-endian, microsecond
/// magic a1b2c3d4): the file header and every record. Throws on a torn or malformed record, so
/// reading a file is itself the proof that it holds only whole records.
/// </summary>
public sealed record PcapFile(ushort VersionMajor, ushort VersionMinor, int ThisZone, uint SnapshotLength, uint LinkType, IReadOnlyList<PcapRecord> Records)
{
    public static PcapFile Read(string path) => Parse(File.ReadAllBytes(path));

    /// <summary>Writes it as a classic pcap (little-endian, microseconds): tests make damaged or re-encapsulated copies this way.</summary>
    public void Write(string path)
    {
        using var file = File.Create(path);
        Span<byte> header = stackalloc byte[24];
        BinaryPrimitives.WriteUInt32LittleEndian(header, 0xa1b2c3d4);
        BinaryPrimitives.WriteUInt16LittleEndian(header[4..], VersionMajor);
        BinaryPrimitives.WriteUInt16LittleEndian(header[6..], VersionMinor);
        BinaryPrimitives.WriteInt32LittleEndian(header[8..], ThisZone);
        BinaryPrimitives.WriteUInt32LittleEndian(header[16..], SnapshotLength);
        BinaryPrimitives.WriteUInt32LittleEndian(header[20..], LinkType);
        file.Write(header);
        Span<byte> record = stackalloc byte[16];
        foreach (var r in Records)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(record, r.Seconds);
            BinaryPrimitives.WriteUInt32LittleEndian(record[4..], r.Microseconds);
            BinaryPrimitives.WriteUInt32LittleEndian(record[8..], r.CapturedLength);
            BinaryPrimitives.WriteUInt32LittleEndian(record[12..], r.OriginalLength);
            file.Write(record);
            file.Write(r.Data);
        }
    }

    /// <summary>Where record <paramref name="index"/> (0-based) starts in the file as written: its 16-byte header.</summary>
    public long RecordOffset(int index) => 24 + Records.Take(index).Sum(r => 16L + r.Data.Length);

    public static PcapFile Parse(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < 24)
        {
            throw new InvalidDataException($"a pcap needs a 24-byte header, this has {bytes.Length} bytes");
        }

        var magic = BinaryPrimitives.ReadUInt32LittleEndian(bytes);
        if (magic != 0xa1b2c3d4)
        {
            throw new InvalidDataException($"not a little-endian microsecond pcap: magic {magic:x8}");
        }

        var snaplen = BinaryPrimitives.ReadUInt32LittleEndian(bytes[16..]);
        var records = new List<PcapRecord>();
        var offset = 24;
        while (offset < bytes.Length)
        {
            if (bytes.Length - offset < 16)
            {
                throw new InvalidDataException($"torn record header at offset {offset}");
            }

            var header = bytes[offset..];
            var caplen = BinaryPrimitives.ReadUInt32LittleEndian(header[8..]);
            var length = BinaryPrimitives.ReadUInt32LittleEndian(header[12..]);
            if (caplen > snaplen || caplen > length || bytes.Length - offset - 16 < caplen)
            {
                throw new InvalidDataException($"bad or torn record at offset {offset}: caplen {caplen}, len {length}, snaplen {snaplen}");
            }

            records.Add(new PcapRecord(
                BinaryPrimitives.ReadUInt32LittleEndian(header),
                BinaryPrimitives.ReadUInt32LittleEndian(header[4..]),
                caplen,
                length,
                header.Slice(16, (int)caplen).ToArray()));
            offset += 16 + (int)caplen;
        }

        return new PcapFile(
            BinaryPrimitives.ReadUInt16LittleEndian(bytes[4..]),
            BinaryPrimitives.ReadUInt16LittleEndian(bytes[6..]),
            BinaryPrimitives.ReadInt32LittleEndian(bytes[8..]),
            snaplen,
            BinaryPrimitives.ReadUInt32LittleEndian(bytes[20..]),
            records);
    }
}
