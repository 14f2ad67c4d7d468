using KubeCapture.Contracts;
using KubeCapture.Contracts.Arguments;
using KubeCapture.Contracts.Capture;
using KubeCapture.Contracts.Filter;
using KubeCapture.Contracts.Recorder;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Configuration;

namespace KubeCapture.Operator.Reconciliation;

/// <summary>
/// Configuration section "Policy:Recorder": the limits of flight recordings (spec.recorder), on top of
/// the capture's own (spec.duration still bounds the whole recording). The ring is held in the agent's
/// memory inside the target pod, where an ephemeral container cannot have a resource limit: these
/// bound what a namespace user can make an agent hold, and how much of other people's traffic a
/// snapshot can keep.
/// </summary>
public sealed class RecorderPolicy
{
    /// <summary>The longest spec.recorder.window: how much of the past one snapshot may keep.</summary>
    public string MaxWindow { get; set; } = "15m";

    /// <summary>The largest spec.recorder.maxBytes: the ring each agent holds in memory (at most 1Gi whatever this says).</summary>
    public string MaxRingBytes { get; set; } = "256Mi";

    /// <summary>The most snapshots one recording may keep (spec.recorder.maxSnapshots).</summary>
    public int MaxSnapshots { get; set; } = 10;

    /// <summary>
    /// The first problem of <paramref name="recorder"/>, as a refusal naming the field (InvalidSpec,
    /// InvalidFilter, PolicyExceeded), or null. <paramref name="duration"/> is the capture's, already
    /// checked; <paramref name="spec"/>'s snaplen and interface are checked too.
    /// </summary>
    public SpecVerdict? Check(RecorderSpec recorder, PacketCaptureSpec spec, TimeSpan duration)
    {
        if (recorder.Window.Length == 0)
        {
            return SpecVerdict.Refuse("InvalidSpec", "spec.recorder.window is required: how much of the past a snapshot keeps, e.g. 5m");
        }

        if (Problem(DurationOf("spec.recorder.window", recorder.Window, allowZero: false, out var window)) is { } windowProblem)
        {
            return windowProblem;
        }

        if (window > duration)
        {
            return SpecVerdict.Refuse("InvalidSpec",
                $"spec.recorder.window {recorder.Window} is longer than spec.duration {spec.Duration}: the recording would end before its ring held a window; lengthen spec.duration or shorten the window");
        }

        if (window > CapturePolicy.ParseDuration(MaxWindow, "Policy:Recorder:MaxWindow"))
        {
            return SpecVerdict.Refuse("PolicyExceeded", $"spec.recorder.window {recorder.Window} is longer than the policy's maximum {MaxWindow} (Policy:Recorder:MaxWindow)");
        }

        if (recorder.After is { } afterText)
        {
            if (Problem(DurationOf("spec.recorder.after", afterText, allowZero: true, out var after)) is { } afterProblem)
            {
                return afterProblem;
            }

            if (after > duration)
            {
                return SpecVerdict.Refuse("InvalidSpec", $"spec.recorder.after {afterText} is longer than spec.duration {spec.Duration}: no snapshot could end");
            }
        }

        if (recorder.Cooldown is { } cooldown && Problem(DurationOf("spec.recorder.cooldown", cooldown, allowZero: true, out _)) is { } cooldownProblem)
        {
            return cooldownProblem;
        }

        if (RingProblem(recorder, spec) is { } ringProblem)
        {
            return ringProblem;
        }

        if (recorder.MaxSnapshots is { } snapshots)
        {
            if (snapshots is < 1 or > RecorderLimits.MaxMaxSnapshots)
            {
                return SpecVerdict.Refuse("InvalidSpec", $"spec.recorder.maxSnapshots {snapshots}: use 1 to {RecorderLimits.MaxMaxSnapshots}");
            }

            if (snapshots > MaxSnapshots)
            {
                return SpecVerdict.Refuse("PolicyExceeded", $"spec.recorder.maxSnapshots {snapshots} is more than the policy's maximum {MaxSnapshots} (Policy:Recorder:MaxSnapshots)");
            }
        }

        return TriggerProblem(recorder.Triggers, spec.Interface ?? "any");
    }

    /// <summary>The agent's <c>record</c> options for <paramref name="recorder"/>, as the resource spells them.</summary>
    public static AgentRecorderArguments Arguments(RecorderSpec recorder) => new()
    {
        Window = recorder.Window,
        After = recorder.After,
        MaxSnapshots = recorder.MaxSnapshots,
        Cooldown = recorder.Cooldown,
        TriggerFilter = recorder.Triggers?.Filter?.Expression,
        TriggerCount = recorder.Triggers?.Filter?.Count,
        TriggerFindings = recorder.Triggers?.Findings ?? [],
    };

    /// <summary>Fails at startup, naming the key, when the recorder's policy is malformed.</summary>
    public void Validate()
    {
        if (CapturePolicy.ParseDuration(MaxWindow, "Policy:Recorder:MaxWindow") <= TimeSpan.Zero)
        {
            throw new OperatorConfigurationException($"Policy:Recorder:MaxWindow {MaxWindow}: it must be longer than zero");
        }

        if (!Quantities.TryParseSize(MaxRingBytes, out var ring, out var error) || ring < 1 || ring > RecorderLimits.MaxRingBytes)
        {
            throw new OperatorConfigurationException($"Policy:Recorder:MaxRingBytes {MaxRingBytes}: {(ring > 0 ? "at most 1Gi (the ring is held in the agent's memory)" : error)}");
        }

        if (MaxSnapshots is < 1 or > RecorderLimits.MaxMaxSnapshots)
        {
            throw new OperatorConfigurationException($"Policy:Recorder:MaxSnapshots {MaxSnapshots}: use 1 to {RecorderLimits.MaxMaxSnapshots}");
        }
    }

    private SpecVerdict? RingProblem(RecorderSpec recorder, PacketCaptureSpec spec)
    {
        var text = recorder.RingBytes;
        if (!Quantities.TryParseSize(text, out var ring, out var sizeError))
        {
            return SpecVerdict.Refuse("InvalidSpec", $"spec.recorder.maxBytes: {sizeError}");
        }

        var snaplen = spec.Snaplen ?? CaptureOptions.DefaultSnaplen;
        var effectiveSnaplen = snaplen == 0 ? CaptureOptions.MaxSnaplen : snaplen;
        var oneRecord = RecorderLimits.OneRecord(effectiveSnaplen);
        if (ring < oneRecord)
        {
            return SpecVerdict.Refuse("InvalidSpec",
                $"spec.recorder.maxBytes {text} cannot hold one packet at snaplen {effectiveSnaplen} ({oneRecord} bytes with its record header): give at least {oneRecord} bytes, or a smaller spec.snaplen");
        }

        if (ring > RecorderLimits.MaxRingBytes)
        {
            return SpecVerdict.Refuse("InvalidSpec", $"spec.recorder.maxBytes {text} is too large for a ring held in the agent's memory: at most 1Gi");
        }

        return ring > Size(MaxRingBytes)
            ? SpecVerdict.Refuse("PolicyExceeded", $"spec.recorder.maxBytes {text} is more than the policy's maximum ring {MaxRingBytes} (Policy:Recorder:MaxRingBytes): the ring is held in the target pod's memory")
            : null;
    }

    private static SpecVerdict? TriggerProblem(RecorderTriggerSpec? triggers, string interfaceName)
    {
        try
        {
            if (triggers?.Filter is { } filter)
            {
                var expression = filter.Expression.Trim();
                if (expression.Length == 0)
                {
                    return SpecVerdict.Refuse("InvalidSpec", "spec.recorder.triggers.filter.expression is empty: give the BPF filter whose matches fire the trigger, e.g. \"tcp[tcpflags] & tcp-rst != 0\"");
                }

                if (FilterCheck.Problem(interfaceName, expression) is { } problem)
                {
                    return SpecVerdict.Refuse("InvalidFilter", $"spec.recorder.triggers.filter.expression: {problem}");
                }

                if (filter.Count is { } count)
                {
                    _ = RecorderTriggers.ParseFilterCount("spec.recorder.triggers.filter.count", count);
                }
            }

            if (triggers?.Findings is { } findings)
            {
                _ = RecorderTriggers.ParseFindings("spec.recorder.triggers.findings", findings);
            }
        }
        catch (UsageException e)
        {
            return SpecVerdict.Refuse("InvalidSpec", e.Message);
        }

        return null;
    }

    private static string? DurationOf(string field, string text, bool allowZero, out TimeSpan value)
    {
        if (!Quantities.TryParseDuration(text, out value, out var error))
        {
            return $"{field}: {error}";
        }

        return value > TimeSpan.Zero || (allowZero && value == TimeSpan.Zero) ? null : $"{field} {text}: it must be longer than zero";
    }

    private static SpecVerdict? Problem(string? message) => message is null ? null : SpecVerdict.Refuse("InvalidSpec", message);

    private static long Size(string text) =>
        Quantities.TryParseSize(text, out var value, out var error) ? value : throw new OperatorConfigurationException($"Policy:Recorder:MaxRingBytes: {error}");
}
