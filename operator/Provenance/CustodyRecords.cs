namespace KubeCapture.Operator.Provenance;

/// <summary>The requester kube-apiserver authenticated, as the admission webhook stamped it.</summary>
public sealed record CaptureRequester
{
    public required string Username { get; init; }

    public string? Uid { get; init; }

    public IReadOnlyList<string> Groups { get; init; } = [];

    /// <summary>
    /// What else the authenticator said (kube-apiserver's <c>userInfo.extra</c>: e.g. the credential
    /// id of a ServiceAccount token, the pod it is bound to, OIDC scopes), keys in ordinal order;
    /// null when it said nothing.
    /// </summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>>? Extra { get; init; }
}

/// <summary>The pod a pcap was taken in, as the operator saw it.</summary>
public sealed record TargetPodRecord
{
    public required string Name { get; init; }

    public required string Uid { get; init; }

    public string? Node { get; init; }

    public IReadOnlyList<string> Ips { get; init; } = [];
}

/// <summary>Retention and Object Lock of a stored pcap, as applied.</summary>
public sealed record RetentionRecord
{
    /// <summary>none, governance or compliance.</summary>
    public string Lock { get; init; } = "none";

    /// <summary>Until when the lock refuses deletion; null without a lock.</summary>
    public DateTimeOffset? RetainUntil { get; init; }

    public bool LegalHold { get; init; }
}
