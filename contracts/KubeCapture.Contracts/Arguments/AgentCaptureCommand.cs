using System.Globalization;
using KubeCapture.Contracts.Capture;

namespace KubeCapture.Contracts.Arguments;

/// <summary>
/// The agent's command line in cluster mode, the contract between the operator, which writes it into
/// the capture container's args, and the agent, which parses it (its <c>CommandLine</c> reads these
/// option names): <c>capture --ingest URL [--ingest-ca-pem BASE64] --capture-uid U --capture-namespace NS
/// --capture-name N --pod P -i IFACE -s SNAPLEN [-c COUNT] --duration D --max-bytes SIZE --retention TTL
/// [-- FILTER]</c>; a recording (<see cref="Recorder"/>) is <c>record</c> with the same options and
/// the recorder's (<see cref="AgentRecorderArguments"/>) before the filter. The filter goes after <c>--</c>, so a filter that starts with '-' (<c>-1 = -1</c>)
/// is never taken for an option. The token is never on the command line: it is in
/// <see cref="TokenVariable"/>.
/// </summary>
public sealed record AgentCaptureCommand
{
    public const string Verb = "capture";

    /// <summary>The environment variable that carries the per-capture upload token.</summary>
    public const string TokenVariable = "KUBECAPTURE_TOKEN";

    /// <summary>The environment variable that carries a W3C trace context for the upload stream.</summary>
    public const string TraceParentVariable = "TRACEPARENT";

    public const string IngestOption = "--ingest";

    /// <summary>The CA (PEM, or PEM in base64) a TLS ingest's certificate must be issued by.</summary>
    public const string IngestCaOption = "--ingest-ca-pem";

    public const string TokenOption = "--token";
    public const string CaptureUidOption = "--capture-uid";
    public const string CaptureNamespaceOption = "--capture-namespace";
    public const string CaptureNameOption = "--capture-name";
    public const string PodOption = "--pod";
    public const string RetentionOption = "--retention";
    public const string IngestRetryOption = "--ingest-retry";

    /// <summary>The options that only cluster mode takes.</summary>
    public static readonly IReadOnlyList<string> ClusterOptions =
        [IngestOption, IngestCaOption, TokenOption, CaptureUidOption, CaptureNamespaceOption, CaptureNameOption, PodOption, RetentionOption, IngestRetryOption];

    /// <summary>How long a stored pcap is kept when the capture says nothing (the operator's default retention, as the agent is told it).</summary>
    public const string DefaultRetention = "168h";

    public required string IngestUrl { get; init; }

    /// <summary>The ingest's CA bundle (PEM) when the ingest serves TLS; it goes on the command line base64-encoded, one word.</summary>
    public string? IngestCaPem { get; init; }

    public required CaptureIdentity Target { get; init; }

    public string Interface { get; init; } = "any";

    public int Snaplen { get; init; } = CaptureOptions.DefaultSnaplen;

    public long? MaxPackets { get; init; }

    /// <summary>As the capture spells it: "30s", "5m".</summary>
    public required string Duration { get; init; }

    /// <summary>As the capture spells it: "64Mi".</summary>
    public string MaxBytes { get; init; } = CaptureOptions.DefaultMaxBytesText;

    public string Retention { get; init; } = DefaultRetention;

    public string Filter { get; init; } = "";

    /// <summary>Set for a flight recording: the verb is <c>record</c> and <see cref="MaxBytes"/> is the ring's size.</summary>
    public AgentRecorderArguments? Recorder { get; init; }

    /// <summary>Whether the ingest is reached over TLS (an https:// URL).</summary>
    public static bool IsTls(string ingestUrl) => ingestUrl.StartsWith("https://", StringComparison.OrdinalIgnoreCase);

    /// <summary>The container's args: the verb, then the options, then the filter after <c>--</c>.</summary>
    public IReadOnlyList<string> ToArgs()
    {
        var args = new List<string> { Recorder is null ? Verb : AgentRecorderArguments.Verb, IngestOption, IngestUrl };
        if (IsTls(IngestUrl))
        {
            args.AddRange([IngestCaOption, Convert.ToBase64String(System.Text.Encoding.ASCII.GetBytes(
                IngestCaPem is { Length: > 0 } ? IngestCaPem : throw new ArgumentException($"the ingest {IngestUrl} serves TLS: the agent needs its CA", nameof(IngestCaPem))))]);
        }

        args.AddRange(
        [
            CaptureUidOption, Target.CaptureUid,
            CaptureNamespaceOption, Target.Namespace,
            CaptureNameOption, Target.CaptureName,
            PodOption, Target.Pod,
            "-i", Interface,
            "-s", Snaplen.ToString(CultureInfo.InvariantCulture),
        ]);
        if (MaxPackets is { } count)
        {
            args.AddRange(["-c", count.ToString(CultureInfo.InvariantCulture)]);
        }

        args.AddRange(["--duration", Duration, "--max-bytes", MaxBytes, RetentionOption, Retention]);
        if (Recorder is not null)
        {
            args.AddRange(Recorder.ToArgs());
        }

        if (!string.IsNullOrWhiteSpace(Filter))
        {
            args.AddRange(["--", Filter.Trim()]);
        }

        return args;
    }
}
