using System.Globalization;
using KubeCapture.Contracts.Arguments;
using KubeCapture.Contracts.Summary;

namespace KubeCapture.Contracts.Recorder;

/// <summary>
/// The flight recorder's trigger syntax, read the same way by the agent (<c>--trigger-count</c>,
/// <c>--trigger-finding</c>) and by the operator (<c>spec.recorder.triggers</c>): a bad trigger is
/// refused with the same words wherever it is typed, naming the option or field it came from.
/// </summary>
public static class RecorderTriggers
{
    /// <summary>The largest N of a filter trigger's N/PERIOD: the agent keeps the last N match times.</summary>
    public const int MaxTriggerCount = 100_000;

    /// <summary>Findings that only comparing both ends can make: one agent never sees them.</summary>
    public static readonly IReadOnlyList<string> BothEndsFindings =
        [FindingTypes.ResetFromMiddlebox, FindingTypes.ReturnPath, FindingTypes.SilentlyDropped, FindingTypes.LossOnOneLeg];

    /// <summary>Parses N/PERIOD (20/10s): a whole number of at least <paramref name="minimum"/>, then a duration above zero.</summary>
    public static TriggerThreshold ParseThreshold(string option, string text, long minimum, string? shown = null)
    {
        shown ??= text;
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        var example = minimum == 0 ? "5/1m" : "20/10s";
        if (slash < 0)
        {
            throw new UsageException($"invalid {option} '{shown}': give a rate COUNT/PERIOD, e.g. {example}");
        }

        if (!long.TryParse(text.AsSpan(0, slash), NumberStyles.None, CultureInfo.InvariantCulture, out var count) || count < minimum)
        {
            throw new UsageException($"invalid {option} '{shown}': the count before '/' must be a whole number of at least {minimum}, e.g. {example}");
        }

        if (!Quantities.TryParseDuration(text[(slash + 1)..], out var period, out _) || period <= TimeSpan.Zero)
        {
            throw new UsageException($"invalid {option} '{shown}': the period after '/' must be a duration above zero, e.g. {example}");
        }

        return new TriggerThreshold(count, period);
    }

    /// <summary>A filter trigger's N/PERIOD, at most <see cref="MaxTriggerCount"/> matches.</summary>
    public static TriggerThreshold ParseFilterCount(string option, string text)
    {
        var count = ParseThreshold(option, text, minimum: 1);
        return count.Count <= MaxTriggerCount
            ? count
            : throw new UsageException($"invalid {option} '{text}': at most {MaxTriggerCount} matches (the recorder keeps the time of each)");
    }

    /// <summary>
    /// One finding trigger: a finding type or a severity (Error, Warning, Info), with an optional rate
    /// <c>&gt;N/PERIOD</c>. The findings only both ends can make are refused, naming the closest one
    /// agent can see.
    /// </summary>
    public static FindingTriggerSpec ParseFinding(string option, string item)
    {
        var gt = item.IndexOf('>', StringComparison.Ordinal);
        var name = gt < 0 ? item.Trim() : item[..gt].Trim();
        var isSeverity = name is FindingSeverity.Error or FindingSeverity.Warning or FindingSeverity.Info;
        if (BothEndsFindings.Contains(name))
        {
            throw new UsageException(
                $"{option} {name}: that finding comes from comparing both ends of a conversation, which one agent cannot see; " +
                $"the agent's own findings include {FindingTypes.ResetSuspectedForged} (a RST a device in between likely made)");
        }

        if (!isSeverity && !FindingTypes.All.Contains(name))
        {
            throw new UsageException(
                $"{option}: unknown finding type '{name}': use a severity (Error, Warning) or one of " +
                string.Join(", ", FindingTypes.All.Except(BothEndsFindings)));
        }

        if (gt < 0)
        {
            return new FindingTriggerSpec(name, isSeverity, 0, null);
        }

        var threshold = ParseThreshold(option, item[(gt + 1)..].Trim(), minimum: 0, shown: item);
        return new FindingTriggerSpec(name, isSeverity, threshold.Count, threshold.Period);
    }

    /// <summary>A comma-separated list of finding triggers, at least one.</summary>
    public static List<FindingTriggerSpec> ParseFindings(string option, IEnumerable<string> items)
    {
        var triggers = items.Select(i => i.Trim()).Where(i => i.Length > 0).Select(i => ParseFinding(option, i)).ToList();
        return triggers.Count > 0 ? triggers : throw new UsageException($"{option} needs at least one finding type, e.g. ConnectionRefused>5/1m");
    }
}

/// <summary>COUNT events within PERIOD, as typed: 20/10s.</summary>
public sealed record TriggerThreshold(long Count, TimeSpan Period)
{
    public override string ToString() => $"{Count}/{Quantities.FormatDuration(Period)}";
}

/// <summary>
/// One finding trigger: a finding type or a severity (Error, Warning), and more than
/// <see cref="MoreThan"/> of them within <see cref="Period"/> (null: any new one).
/// </summary>
public sealed record FindingTriggerSpec(string Finding, bool IsSeverity, long MoreThan, TimeSpan? Period)
{
    public override string ToString() => Period is { } period
        ? $"{Finding}>{MoreThan}/{Quantities.FormatDuration(period)}"
        : MoreThan > 0 ? $"{Finding}>{MoreThan}" : Finding;
}
