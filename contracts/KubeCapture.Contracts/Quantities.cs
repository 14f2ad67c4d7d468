using System.Globalization;

namespace KubeCapture.Contracts;

/// <summary>
/// Parses the durations and sizes that users type: Go/Kubernetes-style durations ("500ms", "30s",
/// "1m30s", "1h") and byte sizes in IEC ("64MiB", "64Mi"), SI ("64MB", "64M") or plain bytes.
/// </summary>
public static class Quantities
{
    private static readonly (string Unit, double Seconds)[] DurationUnits =
    [
        ("ms", 0.001), ("us", 0.000001), ("µs", 0.000001), ("ns", 0.000000001), ("h", 3600), ("m", 60), ("s", 1),
    ];

    private static readonly (string Unit, long Factor)[] SizeUnits =
    [
        ("KiB", 1L << 10), ("MiB", 1L << 20), ("GiB", 1L << 30), ("TiB", 1L << 40),
        ("Ki", 1L << 10), ("Mi", 1L << 20), ("Gi", 1L << 30), ("Ti", 1L << 40),
        ("KB", 1_000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("TB", 1_000_000_000_000),
        ("k", 1_000), ("K", 1_000), ("M", 1_000_000), ("G", 1_000_000_000), ("T", 1_000_000_000_000),
        ("B", 1),
    ];

    /// <summary>Parses a duration such as "500ms", "30s", "5m", "1h" or "1m30s".</summary>
    public static bool TryParseDuration(string text, out TimeSpan duration, out string error)
    {
        duration = TimeSpan.Zero;
        error = $"invalid duration '{text}': use a number with a unit, e.g. 500ms, 30s, 5m, 1h or 1m30s";
        var rest = text.Trim();
        if (rest.Length == 0)
        {
            return false;
        }

        double seconds = 0;
        while (rest.Length > 0)
        {
            var numberLength = 0;
            while (numberLength < rest.Length && (char.IsAsciiDigit(rest[numberLength]) || rest[numberLength] == '.'))
            {
                numberLength++;
            }

            if (numberLength == 0 ||
                !double.TryParse(rest.AsSpan(0, numberLength), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value))
            {
                return false;
            }

            rest = rest[numberLength..];
            var matched = false;
            foreach (var (unit, unitSeconds) in DurationUnits)
            {
                if (rest.StartsWith(unit, StringComparison.Ordinal))
                {
                    seconds += value * unitSeconds;
                    rest = rest[unit.Length..];
                    matched = true;
                    break;
                }
            }

            if (!matched)
            {
                return false;
            }
        }

        if (seconds > TimeSpan.MaxValue.TotalSeconds / 2)
        {
            return false;
        }

        duration = TimeSpan.FromSeconds(seconds);
        return true;
    }

    /// <summary>Parses a byte size such as "64MiB", "64Mi", "10MB" or "1048576".</summary>
    public static bool TryParseSize(string text, out long bytes, out string error)
    {
        bytes = 0;
        error = $"invalid size '{text}': use bytes or a number with a unit, e.g. 64MiB, 64Mi, 10MB";
        var trimmed = text.Trim();
        var numberLength = 0;
        while (numberLength < trimmed.Length && (char.IsAsciiDigit(trimmed[numberLength]) || trimmed[numberLength] == '.'))
        {
            numberLength++;
        }

        if (numberLength == 0 ||
            !decimal.TryParse(trimmed.AsSpan(0, numberLength), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value))
        {
            return false;
        }

        var unitText = trimmed[numberLength..].Trim();
        long factor = 1;
        if (unitText.Length > 0)
        {
            var found = Array.FindIndex(SizeUnits, u => u.Unit == unitText);
            if (found < 0)
            {
                return false;
            }

            factor = SizeUnits[found].Factor;
        }

        var total = value * factor;
        if (total > long.MaxValue)
        {
            return false;
        }

        bytes = (long)decimal.Floor(total);
        return true;
    }

    /// <summary>Formats a duration the way it is typed: "500ms", "30s", "5m", "1h30m".</summary>
    public static string FormatDuration(TimeSpan duration)
    {
        if (duration.TotalSeconds < 1)
        {
            return $"{(long)duration.TotalMilliseconds}ms";
        }

        var parts = new List<string>();
        if (duration.Hours + (duration.Days * 24) > 0)
        {
            parts.Add($"{(int)duration.TotalHours}h");
        }

        if (duration.Minutes > 0)
        {
            parts.Add($"{duration.Minutes}m");
        }

        var seconds = duration.Seconds + (duration.Milliseconds / 1000.0);
        if (seconds > 0)
        {
            parts.Add(string.Create(CultureInfo.InvariantCulture, $"{seconds:0.###}s"));
        }

        return string.Concat(parts);
    }

    /// <summary>Formats a byte count for people: "1.5 MiB", "512 B".</summary>
    public static string FormatBytes(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        double value = bytes;
        var unit = 0;
        while (value >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }

        return unit == 0
            ? $"{bytes} B"
            : string.Create(CultureInfo.InvariantCulture, $"{value:0.#} {units[unit]}");
    }
}
