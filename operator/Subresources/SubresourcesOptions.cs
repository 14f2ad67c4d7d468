namespace KubeCapture.Operator.Subresources;

/// <summary>Configuration section "Subresources": the extension API subresources.kubecapture.io served behind kube-apiserver.</summary>
public sealed class SubresourcesOptions
{
    public const string Section = "Subresources";

    /// <summary>Serve the extension API (needs the ServingCertificate section and the Kubernetes API).</summary>
    public bool Enabled { get; set; }

    /// <summary>Where it listens: an https URL with an IP address (or 0.0.0.0 / [::]) and a port.</summary>
    public string Url { get; set; } = "https://0.0.0.0:8443";

    /// <summary>The longest a live follow runs past the capture's duration before it is ended ("2m").</summary>
    public string FollowGrace { get; set; } = "2m";
}
