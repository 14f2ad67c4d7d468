using KubeCapture.Contracts;
using KubeCapture.Operator.Ingest;
using KubeCapture.Testing.Processes;
using KubeCapture.Testing.S3;
using Xunit.Abstractions;

namespace KubeCapture.Operator.Tests.Ingest;

/// <summary>
/// A large pcap goes through in bounded memory: never the whole pcap in RAM. The operator process runs
/// under the memory limit the chart sets for its container (a memory cgroup), as users run it.
/// </summary>
public sealed class IngestLargeUploadTests(ITestOutputHelper output)
{
    [Fact]
    public async Task UploadOf200MiBIsStoredWholeWhileTheOperatorsPeakRssDoesNotGrowWithThePcapSize()
    {
        const long Total = 200L << 20;
        await using var s3 = await S3rverFixture.StartAsync();
        // Under the memory limit the chart gives the operator's container, as in its pod: the runtime sizes its heap to it.
        var limit = await MemoryCgroup.ChartOperatorLimitAsync();
        await using var host = await OperatorHost.StartProcessAsync(OperatorHost.S3Settings(s3, partSize: 8 << 20), memoryLimitBytes: limit);
        using (var warmup = TestAgent.For(host, new CaptureIdentity("uid-warmup", "default", "warmup", "web-0")))
        {
            await warmup.UploadWholeAsync(20L << 20); // every code path JIT-compiled, every pool warmed
        }

        await Task.Delay(300);
        var warmMiB = host.Process!.PeakRssKiB / 1024.0;
        using var agent = TestAgent.For(host, new CaptureIdentity("uid-large", "default", "large", "web-0"));
        var started = DateTime.UtcNow;
        var (stored, sha) = await agent.UploadWholeAsync(Total);
        var seconds = (DateTime.UtcNow - started).TotalSeconds;
        await Task.Delay(300);
        var peakMiB = host.Process!.PeakRssKiB / 1024.0;
        output.WriteLine($"200 MiB in {seconds:0.0}s ({Total / seconds / (1 << 20):0.0} MiB/s); operator peak RSS {warmMiB:0.0} MiB after a 20 MiB warm-up, {peakMiB:0.0} MiB after 200 MiB");

        Assert.Equal(Total, stored.Size);
        Assert.Equal(sha, stored.Sha256);
        Assert.Equal(sha, Evidence.Sha256Of(s3.ObjectPath("captures/default/large/web-0.pcap")!));
        Assert.True(warmMiB > 10, "the RSS sampler saw the operator");
        Assert.True(peakMiB - warmMiB < 48, $"operator peak RSS grew from {warmMiB:0.0} to {peakMiB:0.0} MiB between a 20 MiB and a 200 MiB upload: memory must not follow the pcap size");
        // No fixed ceiling below the limit: the runtime's baseline (about 145 MiB here) moves with the machine's load and
        // cache size; what must hold is that the upload's size does not show in the peak, and the container is never OOM-killed.
        Assert.True(peakMiB < limit / 1024.0 / 1024.0, $"operator peak RSS {peakMiB:0.0} MiB while ingesting 200 MiB in 8 MiB parts over TLS: over its container's limit");
    }
}
