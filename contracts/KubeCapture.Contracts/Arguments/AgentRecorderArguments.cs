using System.Globalization;

namespace KubeCapture.Contracts.Arguments;

/// <summary>
/// The recorder's options on the agent's command line (<c>kubecapture-agent record</c>), the names the
/// agent's parser reads and the operator writes for a PacketCapture with spec.recorder:
/// <c>--window D [--after D] [--max-snapshots N] [--cooldown D] [--trigger-filter EXPR
/// --trigger-count N/PERIOD] [--trigger-finding LIST]</c>. The ring's size is the capture's
/// <c>--max-bytes</c>. Values go as the resource spells them; the agent checks them again.
/// </summary>
public sealed record AgentRecorderArguments
{
    public const string Verb = "record";

    public const string WindowOption = "--window";
    public const string AfterOption = "--after";
    public const string SnapshotDirectoryOption = "--snapshot-dir";
    public const string MaxSnapshotsOption = "--max-snapshots";
    public const string CooldownOption = "--cooldown";
    public const string TriggerFilterOption = "--trigger-filter";
    public const string TriggerCountOption = "--trigger-count";
    public const string TriggerFindingOption = "--trigger-finding";

    /// <summary>Every option the recorder takes besides capture's.</summary>
    public static readonly IReadOnlyList<string> Options =
        [WindowOption, AfterOption, SnapshotDirectoryOption, MaxSnapshotsOption, CooldownOption, TriggerFilterOption, TriggerCountOption, TriggerFindingOption];

    /// <summary>"5m".</summary>
    public required string Window { get; init; }

    public string? After { get; init; }

    public int? MaxSnapshots { get; init; }

    public string? Cooldown { get; init; }

    public string? TriggerFilter { get; init; }

    /// <summary>N/PERIOD for <see cref="TriggerFilter"/>: "20/10s".</summary>
    public string? TriggerCount { get; init; }

    /// <summary>"ConnectionRefused>5/1m", "DataStalled": joined with commas into one word.</summary>
    public IReadOnlyList<string> TriggerFindings { get; init; } = [];

    /// <summary>The recorder's options, each as one word after its name (a filter with spaces stays one argument).</summary>
    public IReadOnlyList<string> ToArgs()
    {
        var args = new List<string> { WindowOption, Window };
        Add(args, AfterOption, After);
        Add(args, MaxSnapshotsOption, MaxSnapshots?.ToString(CultureInfo.InvariantCulture));
        Add(args, CooldownOption, Cooldown);
        Add(args, TriggerFilterOption, TriggerFilter?.Trim());
        Add(args, TriggerCountOption, TriggerCount);
        Add(args, TriggerFindingOption, TriggerFindings.Count > 0 ? string.Join(",", TriggerFindings.Select(f => f.Trim())) : null);
        return args;
    }

    private static void Add(List<string> args, string option, string? value)
    {
        if (!string.IsNullOrWhiteSpace(value))
        {
            args.AddRange([option, value]);
        }
    }
}
