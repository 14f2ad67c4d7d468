using System.Globalization;
using System.Security.Cryptography.X509Certificates;
using KubeCapture.Agent.Capture;
using KubeCapture.Agent.Ingest;

namespace KubeCapture.Agent.Cli;

/// <summary>What the user asked for on the command line.</summary>
/// <param name="Ingest">Cluster mode: stream to the operator's ingest instead of writing <paramref name="OutputPath"/>.</param>
public sealed record CaptureRequest(CaptureOptions Options, string OutputPath, bool Json, bool Overwrite, IngestTarget? Ingest = null);

/// <summary>
/// Parses <c>capture [options] 'BPF FILTER'</c> the way a tcpdump user types it: short options with
/// or without a space (<c>-c 500</c>, <c>-c500</c>), long options with a space or '=', and every
/// remaining word joined into the filter.
/// </summary>
public static class CommandLine
{
    public const string Usage = """
        usage: kubecapture-agent capture [options] ['BPF FILTER']
               kubecapture-agent record --window D --snapshot-dir DIR [options] ['BPF FILTER']   (record --help)
               kubecapture-agent summarize [--json] FILE.pcap
               kubecapture-agent compare [--json] CLIENT.pcap.json SERVER.pcap.json
               kubecapture-agent verify PCAP MANIFEST [--public-key FILE]

        capture options (tcpdump's guard rails; the first limit reached stops the capture):
          -i IFACE          interface to capture on (default: any)
          -s SNAPLEN        bytes kept of each packet (default: 128, headers only; 0: whole packet)
          -c COUNT          stop after COUNT packets
          --duration D      stop after D: 500ms, 30s, 5m, 1h (default: 60s; never unbounded, at most 24h)
          --max-bytes SIZE  the pcap never grows past SIZE: 64MiB, 10MB, 1Gi (default: 64MiB)
          -B KIB            kernel capture buffer in KiB, as in tcpdump (default: 8192)
          -w FILE           write the pcap to FILE and its manifest to FILE.json
                            (default: kubecapture-<UTC time>.pcap; an existing file is never overwritten)
          --overwrite       allow -w to replace an existing file
          --no-summary      do not decode TCP for the summary
          --exact-filter    capture exactly the filter, as tcpdump (by default a filter also keeps the ICMP
                            errors and IPv6 jumbograms of the flows it selects: see docs/agent.md)
          --json            print the manifest as JSON on stdout instead of the human summary

        cluster mode (instead of -w; the operator starts the agent this way):
          --ingest URL      stream the pcap to the operator's ingest: https:// (TLS), or http:// (plain h2c,
                            local tests only), e.g. https://kubecapture-ingest.kubecapture.svc:8081
          --ingest-ca-pem CA
                            the CA (PEM, or PEM in base64) the ingest's certificate must be issued by;
                            required with https://, and only with it
          --token T         the per-capture token (default: $KUBECAPTURE_TOKEN)
          --capture-uid U --capture-namespace NS --capture-name N --pod P
                            which PacketCapture and target pod this is (all required)
          --retention D     keep the stored pcap for D (default: the operator's)
          --ingest-retry D  give up when the ingest stays unreachable for D (default: 2m)
          $TRACEPARENT      a W3C trace context, sent with each upload stream (the operator's trace)
        """;

    public static CaptureRequest ParseCapture(IReadOnlyList<string> args, DateTime now, Func<string, string?>? environment = null)
    {
        var cluster = new Dictionary<string, string>();
        var options = new CaptureOptions();
        string? output = null;
        var json = false;
        var overwrite = false;
        var filterWords = new List<string>();
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (arg == "--")
            {
                filterWords.AddRange(args.Skip(i + 1));
                break;
            }

            if (!ArgumentWords.IsOption(arg))
            {
                filterWords.Add(arg);
                continue;
            }

            var (name, inlineValue) = ArgumentWords.Split(arg);
            string Value()
            {
                if (inlineValue is not null)
                {
                    return !name.StartsWith("--", StringComparison.Ordinal) && inlineValue.StartsWith('=')
                        ? throw new UsageException($"invalid value '{inlineValue}' for {name}: tcpdump reads everything after {name} as its value, '=' included, " +
                            $"and so does the agent: write {name} {inlineValue[1..]} or {name}{inlineValue[1..]}")
                        : inlineValue;
                }

                if (i + 1 >= args.Count)
                {
                    throw new UsageException($"option {name} needs a value");
                }

                return args[++i];
            }

            switch (name)
            {
                case "-i" or "--interface":
                    options = options with { Interface = NonEmpty(name, Value()) };
                    break;
                case "-s" or "--snaplen":
                    options = options with { Snaplen = ParseSnaplen(Value()) };
                    break;
                case "-c" or "--count":
                    options = options with { MaxPackets = ParsePositive(name, Value(), "packet count") };
                    break;
                case "--duration" or "-G":
                    options = options with { Duration = ParseDuration(Value()) };
                    break;
                case "--max-bytes":
                    options = options with { MaxBytes = ParseMaxBytes(Value()) };
                    break;
                case "-B" or "--buffer-size":
                    options = options with { BufferBytes = ParseBuffer(Value()) };
                    break;
                case "-w" or "--write":
                    output = NonEmpty(name, Value());
                    break;
                case "--json":
                    json = true;
                    break;
                case "--overwrite":
                    overwrite = true;
                    break;
                case "--no-summary":
                    options = options with { Summary = false };
                    break;
                case "--exact-filter":
                    options = options with { WidenFilter = false };
                    break;
                case var _ when AgentCaptureCommand.ClusterOptions.Contains(name):
                    cluster[name] = NonEmpty(name, Value());
                    break;
                case "-n" or "-nn":
                    break; // the agent never resolves names; accepted so tcpdump habits work
                default:
                    throw new UsageException($"unknown option '{arg}'");
            }
        }

        options = options with { Filter = string.Join(' ', filterWords).Trim() };
        IngestTarget? ingest = null;
        if (cluster.Count > 0)
        {
            if (output is not null)
            {
                throw new UsageException("-w and --ingest cannot be combined: the pcap goes either to a file or to the operator's ingest");
            }

            ingest = ParseIngest(cluster, environment ?? Environment.GetEnvironmentVariable);
            output = "";
        }

        output ??= $"kubecapture-{now.ToUniversalTime():yyyyMMdd'T'HHmmss'Z'}.pcap";
        return new CaptureRequest(options, output, json, overwrite, ingest);
    }

    private static IngestTarget ParseIngest(Dictionary<string, string> cluster, Func<string, string?> environment)
    {
        if (!cluster.TryGetValue(AgentCaptureCommand.IngestOption, out var url))
        {
            throw new UsageException($"{string.Join(", ", cluster.Keys)} only apply to cluster mode: add --ingest URL");
        }

        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            throw new UsageException($"invalid --ingest '{url}': use an https:// (or, for local tests, http://) URL such as https://kubecapture-ingest.kubecapture.svc:8081");
        }

        X509Certificate2Collection? authority = null;
        if (uri.Scheme == Uri.UriSchemeHttps)
        {
            authority = cluster.TryGetValue(AgentCaptureCommand.IngestCaOption, out var ca)
                ? IngestAuthority.Parse(ca)
                : throw new UsageException($"--ingest {url} is TLS: give --ingest-ca-pem CA, the CA the ingest's certificate must be issued by (the operator passes it)");
        }
        else if (cluster.ContainsKey(AgentCaptureCommand.IngestCaOption))
        {
            throw new UsageException($"--ingest-ca-pem is for a TLS ingest, but --ingest {url} is plain h2c: use https:// (the agent never sends a capture in clear when TLS was asked)");
        }

        var token = cluster.GetValueOrDefault(AgentCaptureCommand.TokenOption) ?? environment(AgentCaptureCommand.TokenVariable);
        if (string.IsNullOrWhiteSpace(token))
        {
            throw new UsageException("cluster mode needs the capture token: --token T or the KUBECAPTURE_TOKEN environment variable");
        }

        string Required(string option) => cluster.TryGetValue(option, out var value)
            ? value
            : throw new UsageException($"cluster mode needs {option}: --capture-uid, --capture-namespace, --capture-name and --pod say which capture target this is");

        var target = new IngestTarget
        {
            Url = uri,
            Authority = authority,
            Token = token,
            CaptureUid = Required(AgentCaptureCommand.CaptureUidOption),
            Namespace = Required(AgentCaptureCommand.CaptureNamespaceOption),
            CaptureName = Required(AgentCaptureCommand.CaptureNameOption),
            Pod = Required(AgentCaptureCommand.PodOption),
            TraceParent = TraceParent(environment(AgentCaptureCommand.TraceParentVariable)),
        };
        if (cluster.TryGetValue(AgentCaptureCommand.RetentionOption, out var retention))
        {
            target = target with { Retention = ParsePositiveDuration(AgentCaptureCommand.RetentionOption, retention) };
        }

        if (cluster.TryGetValue(AgentCaptureCommand.IngestRetryOption, out var retry))
        {
            target = target with { RetryBudget = ParsePositiveDuration(AgentCaptureCommand.IngestRetryOption, retry) };
        }

        return target;
    }

    /// <summary>A W3C traceparent (version 00: 00-32 hex-16 hex-2 hex) passed on as given; anything else is dropped, never an error.</summary>
    private static string? TraceParent(string? value) =>
        value is { Length: 55 } && value.StartsWith("00-", StringComparison.Ordinal) && value[35] == '-' && value[52] == '-'
            && IsLowerHex(value.AsSpan(3, 32)) && IsLowerHex(value.AsSpan(36, 16)) && IsLowerHex(value.AsSpan(53, 2))
            ? value : null;

    private static bool IsLowerHex(ReadOnlySpan<char> text) => !text.ContainsAnyExcept("0123456789abcdef");

    private static TimeSpan ParsePositiveDuration(string name, string text)
    {
        if (!Quantities.TryParseDuration(text, out var duration, out var error))
        {
            throw new UsageException($"invalid {name}: {error}");
        }

        return duration > TimeSpan.Zero ? duration : throw new UsageException($"invalid {name} '{text}': it must be greater than zero");
    }

    private static string NonEmpty(string name, string value) =>
        string.IsNullOrWhiteSpace(value) ? throw new UsageException($"option {name} needs a non-empty value") : value;

    private static int ParseSnaplen(string text)
    {
        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var snaplen) ||
            snaplen > CaptureOptions.MaxSnaplen)
        {
            throw new UsageException($"invalid snaplen '{text}': use 0 (whole packet) or 1 to {CaptureOptions.MaxSnaplen} bytes");
        }

        return snaplen;
    }

    private static long ParsePositive(string name, string text, string what)
    {
        if (!long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value))
        {
            throw new UsageException($"invalid {what} '{text}' for {name}: use a whole number greater than zero");
        }

        return value > 0 ? value : throw new UsageException($"invalid {what} {value} for {name}: it must be greater than zero");
    }

    private static TimeSpan ParseDuration(string text)
    {
        if (!Quantities.TryParseDuration(text, out var duration, out var error))
        {
            throw new UsageException(error);
        }

        if (duration <= TimeSpan.Zero)
        {
            throw new UsageException($"invalid duration '{text}': it must be greater than zero");
        }

        if (duration > CaptureOptions.MaxDuration)
        {
            throw new UsageException($"duration '{text}' is longer than the {Quantities.FormatDuration(CaptureOptions.MaxDuration)} a capture may run");
        }

        return duration;
    }

    private static long ParseMaxBytes(string text)
    {
        if (!Quantities.TryParseSize(text, out var bytes, out var error))
        {
            throw new UsageException(error);
        }

        return bytes >= CaptureOptions.MinMaxBytes
            ? bytes
            : throw new UsageException($"invalid --max-bytes '{text}': a pcap needs at least {CaptureOptions.MinMaxBytes} bytes");
    }

    private static int ParseBuffer(string text)
    {
        var kib = ParsePositive("-B", text, "buffer size in KiB");
        return kib <= 1024 * 1024
            ? (int)(kib * 1024)
            : throw new UsageException($"invalid -B {kib}: the capture buffer may be at most 1 GiB (1048576 KiB)");
    }
}
