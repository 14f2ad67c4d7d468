using System.Diagnostics;
using System.Security.Cryptography;

namespace KubeCapture.Operator.Tests.Ingest;

/// <summary>Ground truth about a pcap from outside our code: sha256 of the bytes and tcpdump's reading.</summary>
public static class Evidence
{
    public static string Sha256Of(string path)
    {
        using var file = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(file));
    }

    /// <summary>The packet lines of <c>tcpdump -nn -r</c>; throws when tcpdump cannot read the file.</summary>
    public static IReadOnlyList<string> TcpdumpLines(string path)
    {
        var start = new ProcessStartInfo("tcpdump") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { "-nn", "-r", path })
        {
            start.ArgumentList.Add(arg);
        }

        using var tcpdump = Process.Start(start)!;
        var errors = tcpdump.StandardError.ReadToEndAsync();
        var lines = new List<string>();
        while (tcpdump.StandardOutput.ReadLine() is { } line)
        {
            lines.Add(line);
        }

        tcpdump.WaitForExit();
        return tcpdump.ExitCode == 0 ? lines : throw new InvalidOperationException($"tcpdump -nn -r {path} failed ({tcpdump.ExitCode}): {errors.Result}");
    }
}
