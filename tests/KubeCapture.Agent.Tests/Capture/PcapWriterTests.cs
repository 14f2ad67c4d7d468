using System.Buffers.Binary;
using System.Security.Cryptography;
using KubeCapture.Agent.Capture;
using KubeCapture.Testing.Pcap;

namespace KubeCapture.Agent.Tests.Capture;

public sealed class PcapWriterTests
{
    private static byte[] Packet(int length, byte fill) => Enumerable.Repeat(fill, length).ToArray();

    [Fact]
    public void FileHeaderIsClassicPcapWithSnaplenAndLinkType()
    {
        var stream = new MemoryStream();
        using var writer = new PcapWriter(stream, linkType: 113, snaplen: 128, maxBytes: 1 << 20);
        writer.Finish();

        var bytes = stream.ToArray();
        Assert.Equal(PcapWriter.FileHeaderLength, bytes.Length);
        Assert.Equal(0xa1b2c3d4u, BinaryPrimitives.ReadUInt32LittleEndian(bytes));
        var file = PcapFile.Parse(bytes);
        Assert.Equal((2, 4), (file.VersionMajor, file.VersionMinor));
        Assert.Equal(0, file.ThisZone);
        Assert.Equal(128u, file.SnapshotLength);
        Assert.Equal(113u, file.LinkType);
        Assert.Empty(file.Records);
    }

    [Fact]
    public void RecordsKeepTimestampCapturedAndOriginalLengthAndData()
    {
        var stream = new MemoryStream();
        using var writer = new PcapWriter(stream, 1, 96, 1 << 20);
        Assert.True(writer.TryWrite(1_764_000_000, 999_999, Packet(96, 0xab), originalLength: 1514));
        Assert.True(writer.TryWrite(1_764_000_001, 5, Packet(60, 0xcd), originalLength: 60));
        writer.Finish();

        var file = PcapFile.Parse(stream.ToArray());
        Assert.Equal(2, file.Records.Count);
        Assert.Equal((1_764_000_000u, 999_999u, 96u, 1514u), (file.Records[0].Seconds, file.Records[0].Microseconds, file.Records[0].CapturedLength, file.Records[0].OriginalLength));
        Assert.Equal(Packet(96, 0xab), file.Records[0].Data);
        Assert.Equal((1_764_000_001u, 5u, 60u, 60u), (file.Records[1].Seconds, file.Records[1].Microseconds, file.Records[1].CapturedLength, file.Records[1].OriginalLength));
        Assert.Equal(Packet(60, 0xcd), file.Records[1].Data);
        Assert.Equal(2, writer.Packets);
        Assert.Equal(stream.Length, writer.BytesWritten);
        Assert.Equal(24 + 16 + 96 + 16 + 60, writer.BytesWritten);
    }

    [Theory]
    [InlineData(1024, 100)]
    [InlineData(1000, 100)]
    [InlineData(24 + 116, 100)] // exactly one record fits
    [InlineData(24 + 115, 100)] // not even one
    public void ByteCeilingIsNeverExceededAndOnlyWholeRecordsAreWritten(long maxBytes, int packet)
    {
        var stream = new MemoryStream();
        using var writer = new PcapWriter(stream, 1, 262144, maxBytes, bufferBytes: 300);
        var accepted = 0;
        while (writer.TryWrite(1, 2, Packet(packet, 7), (uint)packet))
        {
            accepted++;
            Assert.True(accepted < 1000);
        }

        Assert.False(writer.TryWrite(1, 2, Packet(packet, 7), (uint)packet)); // still refused, nothing written
        writer.Finish();

        var expected = (int)((maxBytes - 24) / (16 + packet));
        Assert.Equal(expected, accepted);
        Assert.True(stream.Length <= maxBytes);
        Assert.Equal(24 + (expected * (16 + packet)), stream.Length);
        Assert.Equal(expected, PcapFile.Parse(stream.ToArray()).Records.Count);
    }

    [Fact]
    public void RecordThatDoesNotFitIsRefusedButASmallerOneStillFits()
    {
        var stream = new MemoryStream();
        using var writer = new PcapWriter(stream, 1, 2000, 24 + 16 + 100);
        Assert.False(writer.TryWrite(1, 0, Packet(200, 1), 200));
        Assert.True(writer.TryWrite(1, 0, Packet(100, 1), 100));
        writer.Finish();
        Assert.Equal(140, stream.Length);
    }

    [Fact]
    public void Sha256IsTheHashOfExactlyTheBytesWrittenAcrossManyFlushes()
    {
        var stream = new MemoryStream();
        using var writer = new PcapWriter(stream, 1, 1500, 10 << 20, bufferBytes: 4096);
        var random = new Random(7);
        for (var i = 0; i < 500; i++)
        {
            var data = new byte[random.Next(40, 1500)];
            random.NextBytes(data);
            Assert.True(writer.TryWrite((uint)i, 0, data, (uint)data.Length));
        }

        var sha = writer.Finish();
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(stream.ToArray())), sha);
        Assert.Equal(stream.Length, writer.BytesFlushed);
        Assert.Equal(500, PcapFile.Parse(stream.ToArray()).Records.Count);
    }

    [Fact]
    public void FlushHandsOnlyWholeRecordsToTheStream()
    {
        var stream = new MemoryStream();
        using var writer = new PcapWriter(stream, 1, 128, 1 << 20);
        writer.TryWrite(1, 0, Packet(100, 1), 100);
        Assert.Equal(0, stream.Length); // assembled, not yet handed over
        writer.Flush();
        Assert.Equal(24 + 116, stream.Length);
        writer.TryWrite(1, 0, Packet(50, 2), 50);
        writer.Flush();
        Assert.Equal(2, PcapFile.Parse(stream.ToArray()).Records.Count);
    }

    [Fact]
    public void FinishingTwiceIsRefused()
    {
        using var writer = new PcapWriter(new MemoryStream(), 1, 128, 4096);
        writer.Finish();
        Assert.Throws<InvalidOperationException>(() => writer.Finish());
    }

    [Fact]
    public async Task TcpdumpAndCapinfosReadWhatTheWriterWrites()
    {
        var path = Path.Combine(Path.GetTempPath(), $"kcAT-writer-{Guid.NewGuid():n}.pcap");
        try
        {
            string sha;
            using (var file = File.Create(path))
            using (var writer = new PcapWriter(file, 1, 64, 1 << 20))
            {
                var frame = Summary.TcpFrames.Tcp(PacketDotNet.LinkLayers.Ethernet, new("169.254.9.2", 40000), new("169.254.9.1", 80), 1000, 0, Summary.TcpFrames.Syn);
                writer.TryWrite(1_764_000_000, 123_456, frame, (uint)frame.Length);
                var big = Summary.TcpFrames.Tcp(PacketDotNet.LinkLayers.Ethernet, new("169.254.9.1", 80), new("169.254.9.2", 40000), 5000, 1001, Summary.TcpFrames.Ack, payload: 1000);
                writer.TryWrite(1_764_000_000, 223_456, big.AsSpan(0, 64), (uint)big.Length);
                sha = writer.Finish();
            }

            var dump = await Tcpdump.ReadAsync(path);
            Assert.Equal("EN10MB", dump.LinkType);
            Assert.Equal(64, dump.SnapshotLength);
            Assert.Equal(2, dump.Lines.Count);
            Assert.Equal("S", dump.Tcp[0].Flags);
            Assert.Equal(1000, dump.Tcp[1].Length); // from the IP header, though only 64 bytes were kept
            var info = await Capinfos.ReadAsync(path);
            Assert.Equal(2, info.Packets);
            Assert.Equal(sha, info.Sha256);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void FailedWriteIsCutBackToTheLastWholeRecordAndTheShaMatchesWhatRemains()
    {
        var disk = new FullDisk(room: 24 + (3 * 116) + 50); // room for three records and half of the fourth
        using var writer = new PcapWriter(disk, 1, 128, 1 << 20, bufferBytes: 24 + (2 * 116));
        var accepted = 0;
        var failed = false;
        for (var i = 0; i < 10 && !failed; i++)
        {
            try
            {
                if (writer.TryWrite((uint)i, 0, Packet(100, (byte)i), 100))
                {
                    accepted++;
                }
            }
            catch (IOException)
            {
                failed = true;
            }
        }

        Assert.True(failed);
        var sha = writer.Finish();
        var file = PcapFile.Parse(disk.ToArray()); // whole records only, or it throws
        Assert.Equal(file.Records.Count, writer.Packets);
        Assert.Equal(disk.Length, writer.BytesWritten);
        Assert.True(file.Records.Count >= 1 && file.Records.Count < accepted, $"{file.Records.Count} kept of {accepted}");
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(disk.ToArray())), sha);
    }

    [Fact]
    public void FailedFirstWriteStillLeavesTheFileHeader()
    {
        var disk = new FullDisk(room: 100);
        using var writer = new PcapWriter(disk, 1, 128, 1 << 20, bufferBytes: 1000);
        writer.TryWrite(1, 0, Packet(100, 1), 100);
        Assert.Throws<IOException>(writer.Flush);
        disk.Room = 1000; // some space was freed
        var sha = writer.Finish();
        Assert.Empty(PcapFile.Parse(disk.ToArray()).Records);
        Assert.Equal(0, writer.Packets);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(disk.ToArray())), sha);
    }

    /// <summary>A seekable stream that writes what fits and then fails, like write(2) on a full disk.</summary>
    private sealed class FullDisk(int room) : MemoryStream
    {
        public int Room { get; set; } = room;

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            var room = (int)Math.Max(0, Room - Position);
            var fits = buffer[..Math.Min(room, buffer.Length)].ToArray();
            base.Write(fits, 0, fits.Length);
            if (room < buffer.Length)
            {
                throw new IOException("No space left on device");
            }
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
    }
}
