using System.Globalization;
using System.Text.Json;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Capture;
using KubeCapture.Contracts.Resources;
using KubeCapture.Contracts.Summary;

namespace KubeCapture.KubectlPlugin.Reports;

/// <summary>A PacketCapture for people: the list's table, and the status in plain words (the agent's own summary text per target).</summary>
public static class CaptureReport
{
    public static void WriteTable(TextWriter output, IReadOnlyList<PacketCapture> captures, DateTime now)
    {
        string[] header = ["NAME", "PHASE", "TARGET", "PACKETS", "DROPS", "FINDINGS", "AGE", "REASON"];
        var rows = captures.Select(c => new[]
        {
            c.Metadata.Name,
            c.Status?.Phase ?? "",
            c.Status?.TargetSummary ?? c.Spec.Target.PodName ?? Selector(c.Spec.Target),
            Number(c.Status?.Packets),
            Number(c.Status?.DroppedByKernel),
            Number(c.Status?.FindingCount),
            c.Metadata.CreationTimestamp is { } created ? Age(now - created.ToUniversalTime()) : "",
            c.Spec.Reason,
        }).ToList();
        var widths = header.Select((h, i) => rows.Select(r => r[i].Length).Append(h.Length).Max()).ToArray();
        foreach (var row in rows.Prepend(header))
        {
            output.WriteLine(string.Join("   ", row.Select((cell, i) => i == row.Length - 1 ? cell : cell.PadRight(widths[i]))).TrimEnd());
        }
    }

    public static void WriteStatus(TextWriter output, PacketCapture capture)
    {
        var spec = capture.Spec;
        var status = capture.Status;
        output.WriteLine($"Name:       {capture.Metadata.NamespaceProperty}/{capture.Metadata.Name}");
        output.WriteLine($"Reason:     {spec.Reason}");
        output.WriteLine($"Target:     {spec.Target.PodName ?? "pods matching " + Selector(spec.Target)}");
        output.WriteLine($"Capture:    -i {spec.Interface ?? "any"} -s {(spec.Snaplen ?? CaptureOptions.DefaultSnaplen).ToString(CultureInfo.InvariantCulture)}{(spec.MaxPackets is { } count ? $" -c {count}" : "")} --duration {spec.Duration} --max-bytes {spec.MaxBytes ?? PacketCaptureSpec.DefaultMaxBytes}{(spec.Filter is { } filter ? $" '{filter}'" : " (no filter)")}");
        output.WriteLine($"Phase:      {status?.Phase ?? "Pending (not yet seen by the operator)"}{(status?.Message is { Length: > 0 } message ? $": {message}" : "")}");
        if (status?.StartTime is { } start)
        {
            output.WriteLine($"Started:    {Time(start)}{(status.CompletionTime is { } end ? $", ended {Time(end)}" : "")}");
        }

        foreach (var condition in status?.Conditions.Where(c => c.Status == "False") ?? [])
        {
            output.WriteLine($"Problem:    {condition.Type} is False ({condition.Reason}): {condition.Message}");
        }

        foreach (var target in status?.Targets ?? [])
        {
            output.WriteLine();
            WriteTarget(output, target);
        }

        var compared = status?.Findings?.Where(f => f.Target?.Contains(',', StringComparison.Ordinal) == true).ToList() ?? [];
        if (compared.Count > 0)
        {
            output.WriteLine();
            output.WriteLine("Both ends compared:");
            foreach (var finding in compared)
            {
                output.WriteLine($"  - {finding.Severity} {finding.Type} ({finding.Target}): {finding.Message}");
            }
        }
    }

    private static void WriteTarget(TextWriter output, CaptureTargetStatus target)
    {
        output.WriteLine($"Pod {target.Pod}{(target.Node is { } node ? $" on {node}" : "")}: {target.State}{(target.Reason is { } reason ? $" ({reason})" : "")}{(target.Message is { Length: > 0 } message ? $": {message}" : "")}");
        output.WriteLine($"  {target.Packets} packets, {Quantities.FormatBytes(target.Bytes)}, {target.DroppedByKernel} dropped by the kernel{(target.StopReason is { } stop ? $"; stopped by {stop}" : "")}");
        if (target.DroppedByKernel > 0)
        {
            output.WriteLine("  WARNING: the kernel dropped packets: this capture is evidence with pages missing.");
        }

        if (target.Artifact is { } artifact)
        {
            output.WriteLine($"  stored: {Quantities.FormatBytes(artifact.Size)}, sha256 {artifact.Sha256}{(artifact.ExpiresAt is { } expires ? $", kept until {Time(expires)}" : "")}{(artifact.Lock is { } l && l != "none" ? $", {l} lock" : "")}");
            if (artifact.Kept is { } kept)
            {
                output.WriteLine($"  {kept}");
            }
        }

        if (target.RefusedUploads is > 0)
        {
            output.WriteLine($"  WARNING: {target.RefusedUploads} uploads refused (not from the pod's addresses): {target.LastRefusal}");
        }

        if (target.Summary is { ValueKind: JsonValueKind.Object } summaryJson)
        {
            var summary = summaryJson.Deserialize(SummaryJsonContext.Default.TcpSummaryReport)!;
            // The status keeps the counters in summary and the findings beside it: put them back together for the agent's own report.
            summary = summary with { Findings = (target.Findings ?? []).Select(ToFinding).ToList(), FindingsOmitted = target.FindingsOmitted ?? 0 };
            using var indented = new StringWriter();
            HumanReport.WriteSummary(indented, summary);
            foreach (var line in indented.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                output.WriteLine("  " + line.TrimEnd('\r'));
            }
        }
    }

    private static Finding ToFinding(CaptureFinding finding) => new()
    {
        Type = finding.Type,
        Severity = finding.Severity,
        Message = finding.Message,
        Evidence = new FindingEvidence
        {
            Connections = finding.Evidence.Connections,
            Packets = finding.Evidence.Packets,
            Flows = [.. finding.Evidence.Flows],
            PacketNumbers = [.. finding.Evidence.PacketNumbers],
            FirstSeen = finding.Evidence.FirstSeen,
            LastSeen = finding.Evidence.LastSeen,
            Indicators = [.. finding.Evidence.Indicators],
        },
    };

    /// <summary>One line for the end of a wait: the phase, and what was captured.</summary>
    public static string Outcome(PacketCapture capture)
    {
        var status = capture.Status;
        var findings = status?.FindingCount is > 0 ? $", {status.FindingCount} findings (kubectl capture status {capture.Metadata.Name})" : ", no findings";
        return $"{capture.Metadata.Name} {status?.Phase}{(status?.Message is { Length: > 0 } message ? $": {message}" : "")} ({Number(status?.Packets)} packets, {Number(status?.DroppedByKernel)} dropped{findings})";
    }

    private static string Selector(CaptureTarget target)
    {
        if (target.PodSelector is not { } selector)
        {
            return "";
        }

        var terms = (selector.MatchLabels ?? new Dictionary<string, string>()).Select(l => $"{l.Key}={l.Value}")
            .Concat((selector.MatchExpressions ?? []).Select(e => e.OperatorProperty switch
            {
                "Exists" => e.Key,
                "DoesNotExist" => "!" + e.Key,
                _ => $"{e.Key} {e.OperatorProperty.ToLowerInvariant()} ({string.Join(",", e.Values ?? [])})",
            }));
        return string.Join(",", terms);
    }

    private static string Number(long? value) => value?.ToString(CultureInfo.InvariantCulture) ?? "";

    private static string Time(DateTime time) => time.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>kubectl's age: 45s, 12m, 3h, 5d.</summary>
    public static string Age(TimeSpan age) => age.TotalSeconds < 120 ? $"{Math.Max(0, (int)age.TotalSeconds)}s"
        : age.TotalMinutes < 120 ? $"{(int)age.TotalMinutes}m"
        : age.TotalHours < 48 ? $"{(int)age.TotalHours}h"
        : $"{(int)age.TotalDays}d";
}
