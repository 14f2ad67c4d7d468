using System.Security.Cryptography;
using KubeCapture.Operator.Storage;

namespace KubeCapture.Operator.Tests.Storage;

public sealed class ResumableSha256Tests
{
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(63)]
    [InlineData(64)]
    [InlineData(100_001)]
    public void StateExportedMidStreamAndImportedElsewhereGivesTheSameHashAsHashingAtOnce(int split)
    {
        var data = new byte[200_000];
        new Random(split).NextBytes(data);

        var first = new ResumableSha256();
        first.Append(data.AsSpan(0, split));
        var resumed = ResumableSha256.Import(first.ExportState()); // as a restarted operator would
        resumed.Append(data.AsSpan(split));

        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(data)), resumed.HashHex());
    }

    [Fact]
    public void HashingDoesNotDisturbTheRunningState()
    {
        var sha = new ResumableSha256();
        sha.Append("abc"u8);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData("abc"u8)), sha.HashHex());
        sha.Append("def"u8);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData("abcdef"u8)), sha.HashHex());
    }

    [Fact]
    public void StateOfTheWrongLengthIsRefused()
    {
        var error = Assert.Throws<FormatException>(() => ResumableSha256.Import(Convert.ToBase64String(new byte[10])));
        Assert.Contains("112 bytes, not 10", error.Message, StringComparison.Ordinal);
    }
}
