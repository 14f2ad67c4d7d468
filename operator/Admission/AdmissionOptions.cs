namespace KubeCapture.Operator.Admission;

/// <summary>Configuration section "Admission": the webhooks that stamp each new PacketCapture with its requester.</summary>
public sealed class AdmissionOptions
{
    public const string Section = "Admission";

    /// <summary>Serve the webhooks (needs the ServingCertificate section).</summary>
    public bool Enabled { get; set; }

    /// <summary>Where they listen: an https URL with an IP address (or 0.0.0.0 / [::]) and a port.</summary>
    public string Url { get; set; } = "https://0.0.0.0:9443";
}
