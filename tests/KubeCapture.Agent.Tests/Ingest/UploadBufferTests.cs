using KubeCapture.Agent.Ingest;

namespace KubeCapture.Agent.Tests.Ingest;

public sealed class UploadBufferTests
{
    [Fact]
    public void BytesAreReadBackFromAnyUnacknowledgedOffsetAcrossTheRingsWrapAround()
    {
        using var buffer = new UploadBuffer(1 << 16);
        var data = Enumerable.Range(0, 200_000).Select(i => (byte)(i * 7)).ToArray();
        var read = new List<byte>();
        long offset = 0;
        for (var written = 0; written < data.Length;)
        {
            var n = Math.Min(40_000, data.Length - written);
            buffer.Write(data.AsSpan(written, n));
            written += n;
            var chunk = new byte[100_000];
            var got = buffer.Read(offset, chunk);
            read.AddRange(chunk.Take(got));
            offset += got;
            buffer.Acknowledge(offset);
        }

        Assert.Equal(data, read);
        Assert.Equal(data.Length, buffer.End);
    }

    [Fact]
    public void AfterAReconnectTheSameBytesAreReadAgainFromTheAcknowledgedOffset()
    {
        using var buffer = new UploadBuffer(1 << 16);
        var data = Enumerable.Range(0, 50_000).Select(i => (byte)i).ToArray();
        buffer.Write(data);
        buffer.Acknowledge(20_000);
        var again = new byte[30_000];
        Assert.Equal(30_000, buffer.Read(20_000, again));
        Assert.Equal(data[20_000..], again);

        var forgotten = Assert.Throws<InvalidOperationException>(() => buffer.Read(10_000, again));
        Assert.Contains("everything below 20000 was acknowledged", forgotten.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WriterWaitsWhenTheRingIsFullAndContinuesOnAcknowledgement()
    {
        using var buffer = new UploadBuffer(1 << 16);
        buffer.Write(new byte[1 << 16]);
        var writing = Task.Run(() => buffer.Write(new byte[1000]));
        await Task.Delay(300);
        Assert.False(writing.IsCompleted, "a full ring holds the writer back");

        buffer.Acknowledge(1000);
        await writing.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal((1 << 16) + 1000, buffer.End);
    }

    [Fact]
    public async Task FailedUploadReleasesABlockedWriterWithTheReason()
    {
        using var buffer = new UploadBuffer(1 << 16);
        buffer.Write(new byte[1 << 16]);
        var writing = Task.Run(() => buffer.Write(new byte[1000]));
        await Task.Delay(100);
        buffer.Fail(new IngestFailedException("the ingest refused the upload"));

        var error = await Assert.ThrowsAsync<IOException>(() => writing.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Contains("the ingest refused the upload", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AcknowledgingBytesNeverWrittenIsAnError()
    {
        using var buffer = new UploadBuffer(1 << 16);
        buffer.Write(new byte[10]);
        Assert.Throws<InvalidOperationException>(() => buffer.Acknowledge(11));
    }
}
