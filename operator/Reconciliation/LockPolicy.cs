namespace KubeCapture.Operator.Reconciliation;

/// <summary>
/// Configuration section "Policy:Locks": where each kind of S3 Object Lock a capture may ask for is
/// allowed. Each value is a comma-separated list of namespaces; "*" is every namespace captures may
/// run in; empty is none. A compliance lock cannot be shortened or removed by anyone (the bucket
/// owner included) and a legal hold lasts until someone removes it: the defaults allow only
/// governance (deletable early by whoever holds s3:BypassGovernanceRetention), everywhere.
/// </summary>
public sealed class LockPolicy
{
    public const string Everywhere = "*";

    /// <summary>spec.retention.lock: governance.</summary>
    public string Governance { get; set; } = Everywhere;

    /// <summary>spec.retention.lock: compliance.</summary>
    public string Compliance { get; set; } = "";

    /// <summary>spec.retention.legalHold: true.</summary>
    public string LegalHold { get; set; } = "";

    /// <summary>Whether <paramref name="kind"/> (governance, compliance or legalHold) may be used in <paramref name="ns"/>.</summary>
    public bool Allows(string kind, string ns)
    {
        var namespaces = Namespaces(kind);
        return namespaces.Contains(Everywhere) || namespaces.Contains(ns);
    }

    /// <summary>What the policy allows, in words: "governance in every namespace; compliance nowhere; legalHold in forensics".</summary>
    public string Describe() => string.Join("; ", Kinds.Select(kind => Namespaces(kind) switch
    {
        [] => $"{kind} nowhere",
        var list when list.Contains(Everywhere) => $"{kind} in every namespace",
        var list => $"{kind} in {string.Join(", ", list)}",
    }));

    /// <summary>The lock kinds, as a capture's spec names them.</summary>
    public static readonly IReadOnlyList<string> Kinds = ["governance", "compliance", "legalHold"];

    public IReadOnlyList<string> Namespaces(string kind) =>
        (kind switch
        {
            "governance" => Governance,
            "compliance" => Compliance,
            "legalHold" => LegalHold,
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "governance, compliance or legalHold"),
        }).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
