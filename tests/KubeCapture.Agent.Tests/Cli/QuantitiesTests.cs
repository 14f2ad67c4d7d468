using KubeCapture.Agent.Cli;

namespace KubeCapture.Agent.Tests.Cli;

public sealed class QuantitiesTests
{
    [Theory]
    [InlineData("500ms", 0.5)]
    [InlineData("30s", 30)]
    [InlineData("5m", 300)]
    [InlineData("1h", 3600)]
    [InlineData("1m30s", 90)]
    [InlineData("1.5s", 1.5)]
    public void DurationsParseAsTyped(string text, double seconds)
    {
        Assert.True(Quantities.TryParseDuration(text, out var duration, out _));
        Assert.Equal(seconds, duration.TotalSeconds, 6);
    }

    [Theory]
    [InlineData("")]
    [InlineData("30")]
    [InlineData("s")]
    [InlineData("10 parsecs")]
    [InlineData("-5s")]
    public void DurationsWithoutUnitOrNumberAreRejectedWithTheTextInTheError(string text)
    {
        Assert.False(Quantities.TryParseDuration(text, out _, out var error));
        Assert.Contains($"'{text}'", error);
    }

    [Theory]
    [InlineData("64MiB", 64L << 20)]
    [InlineData("64Mi", 64L << 20)]
    [InlineData("10MB", 10_000_000)]
    [InlineData("1Gi", 1L << 30)]
    [InlineData("4096", 4096)]
    [InlineData("512KiB", 512 * 1024)]
    public void SizesParseInIecSiAndKubernetesUnits(string text, long bytes)
    {
        Assert.True(Quantities.TryParseSize(text, out var parsed, out _));
        Assert.Equal(bytes, parsed);
    }

    [Theory]
    [InlineData("lots")]
    [InlineData("64XB")]
    [InlineData("")]
    public void UnparseableSizesAreRejected(string text) =>
        Assert.False(Quantities.TryParseSize(text, out _, out _));
}
