using System.Globalization;
using KubeCapture.Agent.Capture;
using KubeCapture.Agent.Cli;
using KubeCapture.Agent.Summary;
using KubeCapture.Contracts.Recorder;

namespace KubeCapture.Agent.Recorder;

/// <summary>
/// Parses <c>record [options] ['BPF FILTER']</c>: the recorder's own options are taken out, the rest
/// (interface, snaplen, duration, count, -B, the filter) parsed exactly as <c>capture</c> parses them.
/// </summary>
public static class RecordCommandLine
{
    public const string Usage = """
        usage: kubecapture-agent record --window D --snapshot-dir DIR [options] ['BPF FILTER']
               kubecapture-agent record --window D --ingest URL ... [options] ['BPF FILTER']   (cluster mode, as the operator runs it)

        Keeps the last --window of packets in memory and writes a snapshot (a pcap and its manifest, and one
        JSON line on stdout) when a trigger fires: from the window before the trigger to --after after it.

        capture's guard rails: -i IFACE, -s SNAPLEN, -c COUNT, --duration D (the whole recording), -B KIB,
          --exact-filter, --no-summary, -n (as in 'capture --help')
          --max-bytes SIZE  the ring's size, in memory: never more than SIZE of packets, whole records only,
                            the oldest dropped first (default: 64MiB; at most 1GiB)
        recorder:
          --window D        how much of the past a snapshot keeps (required; at most --duration)
          --after D         how long a snapshot goes on after its trigger (default: 10s)
          --snapshot-dir DIR
                            where snapshots are written (required but with --ingest; must exist)
          --max-snapshots N the recording ends after N snapshots (default: 3, at most 100)
          --cooldown D      after a snapshot, automatic triggers wait D (packet time; default: the window)
        triggers (SIGUSR1 always takes a snapshot by hand):
          --trigger-filter EXPR
                            a second BPF filter, run on every captured packet
          --trigger-count N/PERIOD
                            fire when it matched N times within PERIOD (default: 1/1s), e.g. 20/10s
          --trigger-finding LIST
                            finding types or severities, each with an optional rate: ConnectionRefused>5/1m,
                            ResetBare, Error (any new one of those)
        """;

    /// <summary>The largest N of --trigger-count N/PERIOD: the filter trigger keeps the last N match times.</summary>
    public const int MaxTriggerCount = RecorderTriggers.MaxTriggerCount;

    /// <summary>The recorder's own option names: the contract the operator writes them by.</summary>
    private static readonly IReadOnlyList<string> RecorderOptions = AgentRecorderArguments.Options;

    public static RecorderOptions Parse(IReadOnlyList<string> args)
    {
        var own = new Dictionary<string, string>();
        var rest = new List<string>();
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (arg == "--")
            {
                rest.AddRange(args.Skip(i));
                break;
            }

            var eq = arg.IndexOf('=', StringComparison.Ordinal);
            var name = arg.StartsWith("--", StringComparison.Ordinal) && eq > 0 ? arg[..eq] : arg;
            if (RecorderOptions.Contains(name))
            {
                var value = eq > 0 && name.Length < arg.Length ? arg[(eq + 1)..]
                    : i + 1 < args.Count ? args[++i]
                    : throw new UsageException($"option {name} needs a value");
                own[name] = string.IsNullOrWhiteSpace(value) ? throw new UsageException($"option {name} needs a non-empty value") : value;
                continue;
            }

            if (IsCaptureOnly(arg))
            {
                throw new UsageException($"{arg} does not apply to record: snapshots go to --snapshot-dir (or the ingest), one JSON line each on stdout");
            }

            rest.Add(arg);
        }

        var request = CommandLine.ParseCapture(rest, DateTime.UtcNow);
        var capture = request.Options;
        var window = own.TryGetValue(AgentRecorderArguments.WindowOption, out var w)
            ? Duration(AgentRecorderArguments.WindowOption, w, allowZero: false)
            : throw new UsageException("record needs --window D: how much of the past a snapshot keeps, e.g. --window 5m");
        if (window > capture.Duration)
        {
            throw new UsageException(
                $"--window {Quantities.FormatDuration(window)} is longer than --duration {Quantities.FormatDuration(capture.Duration)}: " +
                "the recording would end before its ring held a window; lengthen --duration or shorten --window");
        }

        // The default --after never outlasts a short recording; one typed does, and is refused.
        var after = own.TryGetValue(AgentRecorderArguments.AfterOption, out var a)
            ? Duration(AgentRecorderArguments.AfterOption, a, allowZero: true)
            : Recorder.RecorderOptions.DefaultAfter < capture.Duration ? Recorder.RecorderOptions.DefaultAfter : capture.Duration;
        if (after > capture.Duration)
        {
            throw new UsageException($"--after {Quantities.FormatDuration(after)} is longer than --duration {Quantities.FormatDuration(capture.Duration)}");
        }

        var snaplen = CaptureSession.EffectiveSnaplen(capture.Snaplen);
        var oneRecord = (long)PcapWriter.RecordHeaderLength + snaplen;
        if (capture.MaxBytes < oneRecord)
        {
            throw new UsageException(
                $"--max-bytes {capture.MaxBytes} cannot hold one packet at snaplen {snaplen} ({oneRecord} bytes with its record header): " +
                $"give at least {oneRecord} bytes, or a smaller -s");
        }

        if (capture.MaxBytes > PacketRing.MaxCapacity)
        {
            throw new UsageException($"--max-bytes {Quantities.FormatBytes(capture.MaxBytes)} is too large for a ring held in memory: at most 1GiB");
        }

        var maxSnapshots = own.TryGetValue(AgentRecorderArguments.MaxSnapshotsOption, out var m) ? MaxSnapshots(m) : Recorder.RecorderOptions.DefaultMaxSnapshots;
        var directory = own.TryGetValue(AgentRecorderArguments.SnapshotDirectoryOption, out var d) ? d : null;
        if (request.Ingest is not null && directory is not null)
        {
            throw new UsageException("--snapshot-dir and --ingest cannot be combined: in cluster mode each snapshot is uploaded to the ingest, kept in memory until it is stored");
        }

        if (request.Ingest is null && directory is null)
        {
            throw new UsageException("record needs --snapshot-dir DIR: the directory snapshots are written to (or --ingest URL in a cluster)");
        }

        var filter = FilterTrigger(own);
        var findings = own.TryGetValue(AgentRecorderArguments.TriggerFindingOption, out var f) ? FindingTriggers(f) : [];
        if (findings.Count > 0 && !capture.Summary)
        {
            throw new UsageException("--trigger-finding needs the summary, which --no-summary turns off");
        }

        return new RecorderOptions
        {
            // The live summary is only needed to evaluate finding triggers; each snapshot summarizes its own packets.
            Capture = capture with { Summary = findings.Count > 0 },
            Window = window,
            After = after,
            Cooldown = own.TryGetValue(AgentRecorderArguments.CooldownOption, out var c) ? Duration(AgentRecorderArguments.CooldownOption, c, allowZero: true) : window,
            MaxSnapshots = maxSnapshots,
            SnapshotDirectory = directory,
            Ingest = request.Ingest,
            FilterTrigger = filter,
            FindingTriggers = findings,
        };
    }

    /// <summary>Parses N/PERIOD (20/10s): a whole number above zero, then a duration above zero.</summary>
    public static TriggerThreshold ParseThreshold(string option, string text, long minimum, string? shown = null) =>
        RecorderTriggers.ParseThreshold(option, text, minimum, shown);

    private static bool IsCaptureOnly(string arg) =>
        arg is "--json" or "--overwrite" or "-w" or "--write" ||
        (arg.StartsWith("-w", StringComparison.Ordinal) && !arg.StartsWith("--", StringComparison.Ordinal)) ||
        arg.StartsWith("--write=", StringComparison.Ordinal);

    private static FilterTriggerSpec? FilterTrigger(Dictionary<string, string> own)
    {
        var count = own.TryGetValue(AgentRecorderArguments.TriggerCountOption, out var c) ? RecorderTriggers.ParseFilterCount(AgentRecorderArguments.TriggerCountOption, c) : null;

        if (!own.TryGetValue(AgentRecorderArguments.TriggerFilterOption, out var expression))
        {
            return count is null ? null : throw new UsageException("--trigger-count needs --trigger-filter EXPR: the filter whose matches it counts");
        }

        return new FilterTriggerSpec(expression.Trim(), count ?? new TriggerThreshold(1, TimeSpan.FromSeconds(1)));
    }

    private static List<FindingTriggerSpec> FindingTriggers(string list) =>
        RecorderTriggers.ParseFindings(AgentRecorderArguments.TriggerFindingOption, list.Split(','));

    private static int MaxSnapshots(string text) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n is >= 1 and <= Recorder.RecorderOptions.MaxMaxSnapshots
            ? n
            : throw new UsageException($"invalid --max-snapshots '{text}': use a whole number from 1 to {Recorder.RecorderOptions.MaxMaxSnapshots}");

    private static TimeSpan Duration(string name, string text, bool allowZero)
    {
        if (!Quantities.TryParseDuration(text, out var duration, out var error))
        {
            throw new UsageException($"invalid {name}: {error}");
        }

        return duration > TimeSpan.Zero || (allowZero && duration == TimeSpan.Zero)
            ? duration
            : throw new UsageException($"invalid {name} '{text}': it must be greater than zero");
    }
}
