using System.Globalization;
using System.Text.RegularExpressions;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Arguments;
using KubeCapture.Contracts.Capture;
using KubeCapture.Contracts.Filter;
using KubeCapture.Contracts.Resources;

namespace KubeCapture.KubectlPlugin.Cli;

/// <summary>
/// <c>kubectl capture POD|-l SELECTOR --reason "..." [-i] [-s] [-c] [--duration] [--max-bytes] [--name] [--wait] ['FILTER']</c>,
/// checked here as the operator will check it (the filter compiled by libpcap, as the agent does),
/// so that a typo is exit 2 now rather than a Failed capture later.
/// </summary>
/// <param name="Name">The capture's name, or null: the server picks one from <paramref name="GenerateName"/>.</param>
public sealed partial record NewCapture(string? Name, string GenerateName, PacketCaptureSpec Spec, bool Wait)
{
    /// <summary>The duration when none is given (the agent's default).</summary>
    public static readonly string DefaultDuration = string.Create(CultureInfo.InvariantCulture, $"{(int)CaptureOptions.DefaultDuration.TotalSeconds}s");

    public static NewCapture From(PluginArguments args)
    {
        args.Allow("--interface", "--snaplen", "--count", "--duration", "--max-bytes", "--reason", "--selector", "--name", "--wait");
        var selectorText = args.Option("--selector");
        string? pod = null;
        var filterWords = args.Words;
        if (selectorText is null)
        {
            if (filterWords.Count == 0)
            {
                throw new UsageException("say which pod to capture: kubectl capture POD ... or -l SELECTOR");
            }

            pod = filterWords[0].StartsWith("pod/", StringComparison.Ordinal) || filterWords[0].StartsWith("pods/", StringComparison.Ordinal)
                ? filterWords[0][(filterWords[0].IndexOf('/', StringComparison.Ordinal) + 1)..]
                : filterWords[0];
            if (!DnsSubdomain().IsMatch(pod))
            {
                throw new UsageException($"'{pod}' is not a pod name (lowercase letters, digits, '-' and '.'); a BPF filter goes after the pod, in quotes");
            }

            filterWords = filterWords.Skip(1).ToList();
        }

        var reason = args.Option("--reason")?.Trim();
        if (string.IsNullOrEmpty(reason))
        {
            throw new UsageException("--reason \"...\" is required: captures are audited (say why, e.g. --reason \"partner API calls time out\")");
        }

        var spec = new PacketCaptureSpec
        {
            Reason = reason,
            Target = selectorText is null ? new CaptureTarget { PodName = pod } : new CaptureTarget { PodSelector = LabelSelectorText.Parse(selectorText) },
            Interface = args.Option("--interface"),
            Filter = string.Join(' ', filterWords).Trim() is { Length: > 0 } filter ? filter : null,
            Snaplen = args.Option("--snaplen") is { } snaplen ? ParseSnaplen(snaplen) : null,
            MaxPackets = args.Option("--count") is { } count ? ParseCount(count) : null,
            Duration = ParseDuration(args.Option("--duration") ?? DefaultDuration),
            MaxBytes = args.Option("--max-bytes") is { } maxBytes ? ParseMaxBytes(maxBytes) : null,
        };

        if (FilterCheck.Problem(spec.Interface ?? "any", spec.Filter ?? "") is { } problem)
        {
            throw new UsageException(problem);
        }

        var name = args.Option("--name");
        if (name is not null && !DnsSubdomain().IsMatch(name))
        {
            throw new UsageException($"--name '{name}' is not a valid name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters");
        }

        var generateName = pod is null ? "capture-" : $"{Truncate(pod, 50).TrimEnd('-', '.')}-";
        return new NewCapture(name, generateName, spec, args.Flag("--wait"));
    }

    private static string Truncate(string text, int length) => text.Length <= length ? text : text[..length];

    private static int ParseSnaplen(string text) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var snaplen) && snaplen <= CaptureOptions.MaxSnaplen
            ? snaplen
            : throw new UsageException($"invalid snaplen '{text}' for -s: use 0 (whole packet) or 1 to {CaptureOptions.MaxSnaplen} bytes");

    private static long ParseCount(string text) =>
        long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var count) && count > 0
            ? count
            : throw new UsageException($"invalid packet count '{text}' for -c: use a whole number greater than zero");

    private static string ParseDuration(string text)
    {
        if (!Quantities.TryParseDuration(text, out var duration, out var error))
        {
            throw new UsageException($"--duration: {error}");
        }

        if (duration <= TimeSpan.Zero)
        {
            throw new UsageException($"invalid duration '{text}' for --duration: it must be greater than zero (there is no unbounded capture)");
        }

        if (duration < TimeSpan.FromMilliseconds(1))
        {
            throw new UsageException($"invalid duration '{text}' for --duration: it must be at least 1ms");
        }

        if (duration > CaptureOptions.MaxDuration)
        {
            throw new UsageException($"--duration '{text}' is longer than the {Quantities.FormatDuration(CaptureOptions.MaxDuration)} a capture may run");
        }

        // Kept as typed when the resource's schema takes it ("30s", "1m30s"), else as the agent writes durations.
        return ResourceDuration().IsMatch(text) ? text : Quantities.FormatDuration(duration);
    }

    private static string ParseMaxBytes(string text)
    {
        if (!Quantities.TryParseSize(text, out var bytes, out var error))
        {
            throw new UsageException($"--max-bytes: {error}");
        }

        if (bytes < CaptureOptions.MinMaxBytes)
        {
            throw new UsageException($"invalid size '{text}' for --max-bytes: a pcap needs at least {CaptureOptions.MinMaxBytes} bytes");
        }

        // Kept as typed when the resource's schema takes it ("16Mi"), else in bytes ("1.5Mi").
        return ResourceSize().IsMatch(text) ? text : bytes.ToString(CultureInfo.InvariantCulture);
    }

    [GeneratedRegex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")]
    private static partial Regex DnsSubdomain();

    [GeneratedRegex(@"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$")]
    private static partial Regex ResourceDuration();

    [GeneratedRegex("^[0-9]+(Ki|Mi|Gi|KiB|MiB|GiB|k|K|M|G|KB|MB|GB|B)?$")]
    private static partial Regex ResourceSize();
}
