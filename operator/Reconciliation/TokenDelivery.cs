using System.Globalization;
using System.Text.RegularExpressions;

namespace KubeCapture.Operator.Reconciliation;

/// <summary>How the capture container gets its upload token (<c>Ingest:TokenDelivery</c>).</summary>
public enum TokenDelivery
{
    /// <summary>Secret from Kubernetes 1.33 on (kube-apiserver's /version, asked once at start), else PodSpec.</summary>
    Auto,

    /// <summary>
    /// A Secret per target the container reads through <c>env.valueFrom.secretKeyRef</c>: a <c>view</c>
    /// user never sees the token. Needs kube-apiserver's Node authorizer to know Secrets referenced by
    /// ephemeral containers (kubernetes/kubernetes#114984, fixed in 1.33 by #129670): before that the
    /// kubelet is refused the Secret and the container never starts.
    /// </summary>
    Secret,

    /// <summary>The token as a literal env value in the container spec: readable by whoever may read the pod.</summary>
    PodSpec,
}

/// <summary>
/// The delivery <see cref="TokenDelivery.Auto"/> resolves to for a kube-apiserver version: Secret from
/// 1.33 on (the first release whose Node authorizer lets the kubelet read a Secret referenced by an
/// ephemeral container added after the pod was created), PodSpec before it and for a version it cannot
/// read (a capture that starts, with a warning that says so, rather than one that never starts).
/// </summary>
public sealed partial class TokenDeliveryChoice
{
    /// <summary>The Kubernetes issue whose fix (PR #129670, 1.33) the Secret delivery needs.</summary>
    public const string Issue = "kubernetes/kubernetes#114984";

    public static readonly Version FixedIn = new(1, 33);

    private TokenDeliveryChoice(TokenDelivery delivery, string? warning)
    {
        Delivery = delivery;
        Warning = warning;
    }

    /// <summary>Secret or PodSpec, never Auto.</summary>
    public TokenDelivery Delivery { get; }

    /// <summary>What the operator logs as a warning at start, or null.</summary>
    public string? Warning { get; }

    /// <summary>A delivery set explicitly (Secret or PodSpec): no question asked.</summary>
    public static TokenDeliveryChoice Configured(TokenDelivery delivery) => delivery switch
    {
        TokenDelivery.Secret => new(delivery, null),
        TokenDelivery.PodSpec => new(delivery, "Ingest:TokenDelivery is PodSpec: the upload token is a literal in the capture container's spec, readable by whoever may read the pod (the ingest still binds each upload to the target pod's address)"),
        _ => throw new ArgumentOutOfRangeException(nameof(delivery), delivery, "Auto is resolved with the server's version"),
    };

    /// <summary>
    /// Auto for the server's <c>gitVersion</c> (<c>v1.28.7</c>, <c>v1.32.1-eks-4e11c7a</c>, <c>v1.33.0+k3s1</c>).
    /// </summary>
    public static TokenDeliveryChoice ForServer(string? gitVersion)
    {
        if (Parse(gitVersion) is not { } version)
        {
            return new(TokenDelivery.PodSpec,
                $"Ingest:TokenDelivery is Auto and kube-apiserver's version '{gitVersion}' is not one the operator can read: the upload token goes in the capture container's spec, readable by whoever may read the pod " +
                $"(a Secret is refused to the kubelet before Kubernetes {FixedIn.Major}.{FixedIn.Minor}, {Issue}); set Ingest:TokenDelivery=Secret (chart: ingest.tokenDelivery) if this cluster has the fix");
        }

        return version >= FixedIn
            ? new(TokenDelivery.Secret, null)
            : new(TokenDelivery.PodSpec,
                $"kube-apiserver is v{version.Major}.{version.Minor}, before {FixedIn.Major}.{FixedIn.Minor}: its Node authorizer refuses the kubelet a Secret referenced by an ephemeral container ({Issue}), " +
                "so the upload token goes in the capture container's spec (Ingest:TokenDelivery Auto), readable by whoever may read the pod; each upload is still bound to the target pod's address. " +
                "Set Ingest:TokenDelivery=Secret (chart: ingest.tokenDelivery) if this cluster has the fix backported");
    }

    /// <summary>Major and minor of a Kubernetes gitVersion, or null.</summary>
    public static Version? Parse(string? gitVersion)
    {
        var match = gitVersion is null ? null : VersionPattern().Match(gitVersion.Trim());
        return match is { Success: true }
            ? new Version(int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture), int.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture))
            : null;
    }

    /// <summary>Reads <c>Ingest:TokenDelivery</c>; a value that is none of the three stops the operator with one sentence.</summary>
    public static TokenDelivery Read(string? configured) =>
        string.IsNullOrWhiteSpace(configured) ? TokenDelivery.Auto
        : Enum.TryParse<TokenDelivery>(configured.Trim(), ignoreCase: true, out var delivery) && Enum.IsDefined(delivery) && !int.TryParse(configured, out _) ? delivery
        : throw new OperatorConfigurationException($"Ingest:TokenDelivery '{configured}' is not one of Auto, Secret, PodSpec");

    [GeneratedRegex(@"^v?(\d{1,4})\.(\d{1,4})(?:\.\d+)?(?:[-+].*)?$", RegexOptions.CultureInvariant)]
    private static partial Regex VersionPattern();
}
