using KubeCapture.Contracts;
using KubeCapture.Contracts.Capture;
using KubeCapture.Contracts.Filter;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Configuration;

namespace KubeCapture.Operator.Reconciliation;

/// <summary>
/// Configuration section "Policy": the guard rails every capture in the cluster is held to. Sizes
/// and durations are typed as users type them ("1h", "1Gi").
/// </summary>
public sealed class CapturePolicy
{
    public const string Section = "Policy";

    public string MaxDuration { get; set; } = "1h";

    public string MaxBytes { get; set; } = "1Gi";

    /// <summary>128 keeps headers only: payload capture is opt-in by raising this (262144 allows snaplen 0, whole packets).</summary>
    public int MaxSnaplen { get; set; } = CaptureOptions.DefaultSnaplen;

    public bool RequireFilter { get; set; }

    /// <summary>Every capture must set spec.retention.lock to governance or compliance (evidence that cannot be deleted early).</summary>
    public bool RequireLock { get; set; }

    /// <summary>
    /// The longest spec.retention.ttl ("720h"): nothing a namespace user asks for is kept longer, and a
    /// locked pcap cannot be deleted before it ends. Storage:DefaultRetention must be within it.
    /// </summary>
    public string MaxRetention { get; set; } = "720h";

    /// <summary>Which Object Lock kinds are allowed, and where (section Policy:Locks).</summary>
    public LockPolicy Locks { get; set; } = new();

    public int MaxConcurrentPerNamespace { get; set; } = 2;

    public int MaxConcurrentInCluster { get; set; } = 10;

    public int MaxPodsPerCapture { get; set; } = 10;

    /// <summary>Namespaces where captures may run; empty: all.</summary>
    public List<string> AllowedNamespaces { get; set; } = [];

    /// <summary>The limits of flight recordings, spec.recorder (section Policy:Recorder).</summary>
    public RecorderPolicy Recorder { get; set; } = new();

    /// <summary>
    /// Checks a capture against libpcap's filter compiler and this policy. The first problem found
    /// is returned with a condition reason (InvalidSpec, InvalidFilter, FilterRequired,
    /// NamespaceNotAllowed, PolicyExceeded, LockRequired) and a message naming the field and the limit.
    /// </summary>
    public SpecVerdict Check(PacketCapture capture)
    {
        var spec = capture.Spec;
        var ns = capture.Metadata.NamespaceProperty ?? "";
        if (AllowedNamespaces.Count > 0 && !AllowedNamespaces.Contains(ns, StringComparer.Ordinal))
        {
            return SpecVerdict.Refuse("NamespaceNotAllowed", $"captures are not allowed in namespace '{ns}' (policy allows: {string.Join(", ", AllowedNamespaces)})");
        }

        if (string.IsNullOrWhiteSpace(spec.Reason))
        {
            return SpecVerdict.Refuse("InvalidSpec", "spec.reason is required: captures are audited");
        }

        if (string.IsNullOrEmpty(spec.Target.PodName) == (spec.Target.PodSelector is null))
        {
            return SpecVerdict.Refuse("InvalidSpec", "set exactly one of spec.target.podName and spec.target.podSelector");
        }

        if (!Quantities.TryParseDuration(spec.Duration, out var duration, out var durationError) || duration <= TimeSpan.Zero)
        {
            return SpecVerdict.Refuse("InvalidSpec", $"spec.duration: {(spec.Duration.Length == 0 ? "required: there is no unbounded capture" : durationError)}");
        }

        var maxDuration = ParseDuration(MaxDuration, "Policy:MaxDuration");
        if (duration > maxDuration)
        {
            return SpecVerdict.Refuse("PolicyExceeded", $"spec.duration {spec.Duration} is longer than the policy's maximum {MaxDuration}");
        }

        var maxBytesText = spec.MaxBytes ?? PacketCaptureSpec.DefaultMaxBytes;
        if (!Quantities.TryParseSize(maxBytesText, out var bytes, out var sizeError) || bytes < CaptureOptions.MinMaxBytes)
        {
            return SpecVerdict.Refuse("InvalidSpec", $"spec.maxBytes: {(bytes > 0 ? $"a pcap needs at least {CaptureOptions.MinMaxBytes} bytes" : sizeError)}");
        }

        if (bytes > ParseSize(MaxBytes, "Policy:MaxBytes"))
        {
            return SpecVerdict.Refuse("PolicyExceeded", $"spec.maxBytes {maxBytesText} is more than the policy's maximum {MaxBytes}");
        }

        var snaplen = spec.Snaplen ?? CaptureOptions.DefaultSnaplen;
        if (snaplen < 0 || snaplen > CaptureOptions.MaxSnaplen)
        {
            return SpecVerdict.Refuse("InvalidSpec", $"spec.snaplen {snaplen}: use 0 (whole packet) or 1 to {CaptureOptions.MaxSnaplen}");
        }

        var effectiveSnaplen = snaplen == 0 ? CaptureOptions.MaxSnaplen : snaplen;
        if (effectiveSnaplen > MaxSnaplen)
        {
            return SpecVerdict.Refuse("PolicyExceeded", $"spec.snaplen {snaplen} keeps payload beyond the policy's maximum of {MaxSnaplen} bytes per packet (headers only unless payload capture is allowed)");
        }

        if (spec.MaxPackets is <= 0)
        {
            return SpecVerdict.Refuse("InvalidSpec", $"spec.maxPackets {spec.MaxPackets}: it must be greater than zero");
        }

        var filter = spec.Filter?.Trim() ?? "";
        if (filter.Length == 0 && RequireFilter)
        {
            return SpecVerdict.Refuse("FilterRequired", "spec.filter is required by policy: capture only the traffic you need, e.g. \"host 203.0.113.40 and tcp port 443\"");
        }

        if (spec.Retention?.Ttl is { } ttlText)
        {
            if (!Quantities.TryParseDuration(ttlText, out var ttl, out var ttlError) || ttl <= TimeSpan.Zero)
            {
                return SpecVerdict.Refuse("InvalidSpec", $"spec.retention.ttl: {(ttl <= TimeSpan.Zero && Quantities.TryParseDuration(ttlText, out _, out _) ? "it must be longer than zero" : ttlError)}");
            }

            if (ttl > ParseDuration(MaxRetention, "Policy:MaxRetention"))
            {
                return SpecVerdict.Refuse("PolicyExceeded", $"spec.retention.ttl {ttlText} is longer than the policy's maximum retention {MaxRetention} (Policy:MaxRetention): nothing is kept longer, locked or not");
            }
        }

        foreach (var kind in RequestedLocks(spec.Retention))
        {
            if (!Locks.Allows(kind, ns))
            {
                return SpecVerdict.Refuse("PolicyExceeded",
                    $"spec.retention.{(kind == "legalHold" ? "legalHold" : "lock")} asks for {(kind == "legalHold" ? "a legal hold" : $"a {kind} lock")}, which the policy does not allow in namespace '{ns}' " +
                    $"(Policy:Locks allows {Locks.Describe()}){(kind == "compliance" ? ": a compliance lock cannot be shortened or removed by anyone, the bucket owner included" : "")}");
            }
        }

        if (RequireLock && spec.Retention?.Lock is not ("governance" or "compliance"))
        {
            var allowed = string.Join(" or ", new[] { "governance", "compliance" }.Where(k => Locks.Allows(k, ns)));
            return SpecVerdict.Refuse("LockRequired", $"spec.retention.lock is '{spec.Retention?.Lock ?? "none"}', but policy requires governance or compliance: the pcap must be locked against early deletion " +
                $"(allowed here: {(allowed.Length > 0 ? allowed : "none: ask the KubeCapture admins")})");
        }

        if (FilterCheck.Problem(spec.Interface ?? "any", filter) is { } problem)
        {
            return SpecVerdict.Refuse("InvalidFilter", $"spec.filter: {problem}");
        }

        if (spec.Recorder is { } recorder && Recorder.Check(recorder, spec, duration) is { } refused)
        {
            return refused;
        }

        return SpecVerdict.Accept(duration);
    }

    /// <summary>Fails at startup when captures without a retention of their own would be kept longer than the policy allows any.</summary>
    public void CheckDefaultRetention(TimeSpan defaultRetention)
    {
        if (defaultRetention > ParseDuration(MaxRetention, "Policy:MaxRetention"))
        {
            throw new InvalidOperationException($"Storage:DefaultRetention ({defaultRetention}) is longer than Policy:MaxRetention ({MaxRetention}): lower the default or raise the maximum");
        }
    }

    /// <summary>The lock kinds a retention asks for: governance or compliance, and legalHold.</summary>
    private static IEnumerable<string> RequestedLocks(CaptureRetention? retention)
    {
        if (retention?.Lock is "governance" or "compliance")
        {
            yield return retention.Lock;
        }

        if (retention?.LegalHold == true)
        {
            yield return "legalHold";
        }
    }

    /// <summary>Fails at startup, naming the key, when the policy itself is malformed.</summary>
    public void Validate()
    {
        if (ParseDuration(MaxRetention, "Policy:MaxRetention") <= TimeSpan.Zero)
        {
            throw new InvalidOperationException($"Policy:MaxRetention {MaxRetention}: it must be longer than zero");
        }

        if (RequireLock && !Locks.Namespaces("governance").Any() && !Locks.Namespaces("compliance").Any())
        {
            throw new InvalidOperationException("Policy:RequireLock is true, but Policy:Locks allows neither governance nor compliance anywhere: no capture could ever run");
        }

        _ = ParseDuration(MaxDuration, "Policy:MaxDuration");
        _ = ParseSize(MaxBytes, "Policy:MaxBytes");
        if (MaxSnaplen is < 1 or > CaptureOptions.MaxSnaplen)
        {
            throw new OperatorConfigurationException($"Policy:MaxSnaplen {MaxSnaplen}: use 1 to {CaptureOptions.MaxSnaplen}");
        }

        if (MaxConcurrentPerNamespace < 1 || MaxConcurrentInCluster < 1 || MaxPodsPerCapture < 1)
        {
            throw new OperatorConfigurationException("Policy:MaxConcurrentPerNamespace, MaxConcurrentInCluster and MaxPodsPerCapture must be at least 1");
        }

        Recorder.Validate();
    }

    internal static TimeSpan ParseDuration(string text, string key) =>
        Quantities.TryParseDuration(text, out var value, out var error) ? value : throw new OperatorConfigurationException($"{key}: {error}");

    private static long ParseSize(string text, string key) =>
        Quantities.TryParseSize(text, out var value, out var error) ? value : throw new OperatorConfigurationException($"{key}: {error}");
}

/// <summary>Whether a capture's spec may run, and if not, the condition reason and message.</summary>
public sealed record SpecVerdict(bool Allowed, string Reason, string Message, TimeSpan Duration)
{
    public static SpecVerdict Accept(TimeSpan duration) => new(true, "Valid", "the filter compiles and the spec is within policy", duration);

    public static SpecVerdict Refuse(string reason, string message) => new(false, reason, message, TimeSpan.Zero);
}
