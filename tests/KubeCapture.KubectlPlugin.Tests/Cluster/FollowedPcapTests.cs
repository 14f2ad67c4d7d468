using System.Buffers.Binary;
using System.Diagnostics;
using KubeCapture.KubectlPlugin.Cluster;

namespace KubeCapture.KubectlPlugin.Tests.Cluster;

/// <summary>Follow streams cut by kube-apiserver's request timeout make one valid pcap on stdout: no torn record, none twice.</summary>
public sealed class FollowedPcapTests
{
    [Fact]
    public async Task A_stream_broken_inside_a_record_and_a_second_stream_that_repeats_records_make_one_pcap_with_each_record_once()
    {
        byte[][] records = [.. Enumerable.Range(1, 6).Select(i => Record(seconds: 1000, micros: (uint)i, length: 40 + i))];
        var first = Pcap(records[0], records[1], records[2]);
        var second = Pcap(records[1], records[2], records[3], records[4], records[5]); // rejoined: it starts again with the header, then records already seen
        using var output = new MemoryStream();
        var pcap = new FollowedPcap(output);

        pcap.StartStream();
        Assert.True(await pcap.WriteAsync(first.AsMemory(0, 10), CancellationToken.None)); // inside the header
        Assert.True(await pcap.WriteAsync(first.AsMemory(10, first.Length - 10 - 7), CancellationToken.None)); // the stream breaks 7 bytes before the end of record 3
        var afterBreak = output.Length;
        pcap.StartStream();
        foreach (var piece in second.Chunk(13))
        {
            Assert.True(await pcap.WriteAsync(piece, CancellationToken.None));
        }

        Assert.Equal(Pcap(records).Length, output.Length);
        Assert.Equal(Pcap(records), output.ToArray());
        Assert.Equal(24 + records[0].Length + records[1].Length, afterBreak); // record 3 was not written torn
        Assert.Equal(6, pcap.Records);
        var file = Path.Combine(Path.GetTempPath(), $"kcF-{Guid.NewGuid():N}.pcap");
        await File.WriteAllBytesAsync(file, output.ToArray());
        try
        {
            Assert.Equal(6, (await TcpdumpLinesAsync(file)).Length); // ground truth: tcpdump reads it whole
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task A_reader_that_closes_the_pipe_ends_the_follow_without_an_error()
    {
        var pcap = new FollowedPcap(new ClosedPipe());

        pcap.StartStream();

        Assert.False(await pcap.WriteAsync(Pcap(Record(1, 1, 60)), CancellationToken.None));
    }

    private static byte[] Pcap(params byte[][] records)
    {
        var header = new byte[24];
        BinaryPrimitives.WriteUInt32LittleEndian(header, 0xa1b2c3d4);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(4), 2);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(6), 4);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(16), 65535);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(20), 1); // Ethernet
        return [.. header, .. records.SelectMany(r => r)];
    }

    private static byte[] Record(uint seconds, uint micros, int length)
    {
        var record = new byte[16 + length];
        BinaryPrimitives.WriteUInt32LittleEndian(record, seconds);
        BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(4), micros);
        BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(8), (uint)length);
        BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(12), (uint)length);
        record.AsSpan(16).Fill((byte)micros);
        return record;
    }

    private static async Task<string[]> TcpdumpLinesAsync(string file)
    {
        using var tcpdump = Process.Start(new ProcessStartInfo("tcpdump", ["-nn", "-r", file]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var lines = await tcpdump.StandardOutput.ReadToEndAsync();
        var errors = await tcpdump.StandardError.ReadToEndAsync();
        await tcpdump.WaitForExitAsync();
        Assert.True(tcpdump.ExitCode == 0, errors);
        return [.. lines.Split('\n').Where(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^\d\d:\d\d:\d\d\.\d{6} "))]; // one line a packet
    }

    private sealed class ClosedPipe : MemoryStream
    {
        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => throw new IOException("Broken pipe");

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => throw new IOException("Broken pipe");
    }
}
