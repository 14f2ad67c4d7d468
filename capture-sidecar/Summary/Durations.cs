using System.Globalization;

namespace KubeCapture.Agent.Summary;

/// <summary>Times as people read them in a finding: "0.31 ms", "42 ms", "3.0 s".</summary>
internal static class Durations
{
    public static string Format(long microseconds) => microseconds switch
    {
        < 10_000 => string.Create(CultureInfo.InvariantCulture, $"{microseconds / 1000.0:0.0#} ms"),
        < 1_000_000 => string.Create(CultureInfo.InvariantCulture, $"{microseconds / 1000.0:0} ms"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{microseconds / 1_000_000.0:0.0} s"),
    };
}
