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
