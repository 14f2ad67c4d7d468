namespace KubeCapture.Operator.Admission;

/// <summary>Configuration section "Admission": the webhooks that stamp each new PacketCapture with its requester.</summary>
public sealed class AdmissionOptions
{
    public const string Section = "Admission";

    /// <summary>Serve the webhooks (needs the ServingCertificate section).</summary>
    public bool Enabled { get; set; }

    /// <summary>Where they listen: an https URL with an IP address (or 0.0.0.0 / [::]) and a port.</summary>
    public string Url { get; set; } = "https://0.0.0.0:9443";

    /// <summary>
    /// The user the operator is to kube-apiserver (its ServiceAccount: system:serviceaccount:NS:NAME),
    /// the only one the guard lets remove the capture finalizer. Empty: asked of kube-apiserver at
    /// start (a SelfSubjectReview of the operator's own credentials).
    /// </summary>
    public string OperatorUsername { get; set; } = "";
}
