namespace KubeCapture.Operator.Certificates;

/// <summary>
/// Configuration section "ServingCertificate": the TLS certificate the operator serves HTTPS with
/// (the extension API, webhooks), and the configurations whose <c>caBundle</c> must name its CA.
/// </summary>
public sealed class ServingCertificateOptions
{
    public const string Section = "ServingCertificate";

    /// <summary>"Managed": the operator keeps its own CA and certificate in a Secret. "Mounted": files (cert-manager, or any issuer).</summary>
    public string Mode { get; set; } = ServingCertificateModes.Managed;

    /// <summary>Managed: the Secret (type kubernetes.io/tls, plus ca.crt and ca.key) in the operator's namespace.</summary>
    public string SecretName { get; set; } = "kubecapture-serving-certificate";

    /// <summary>Managed: the Secret's namespace; empty: the operator's own (POD_NAMESPACE), else "default".</summary>
    public string Namespace { get; set; } = "";

    /// <summary>Managed: the DNS names the certificate is for (e.g. SERVICE.NAMESPACE.svc).</summary>
    public List<string> DnsNames { get; set; } = [];

    /// <summary>Managed: the IP addresses the certificate is for.</summary>
    public List<string> IpAddresses { get; set; } = [];

    /// <summary>Managed: how long the serving certificate is valid ("2160h").</summary>
    public string Validity { get; set; } = "2160h";

    /// <summary>Managed: how long the CA is valid ("87600h").</summary>
    public string AuthorityValidity { get; set; } = "87600h";

    /// <summary>Managed: renew a certificate (or the CA) this long before it expires ("720h").</summary>
    public string RenewBefore { get; set; } = "720h";

    /// <summary>Mounted: the PEM certificate (chain) file, e.g. /tls/tls.crt.</summary>
    public string CertificateFile { get; set; } = "";

    /// <summary>Mounted: the PEM private key file, e.g. /tls/tls.key.</summary>
    public string KeyFile { get; set; } = "";

    /// <summary>Mounted: the PEM CA file published as caBundle; empty: nothing is published (cert-manager's CA injector does it).</summary>
    public string CaFile { get; set; } = "";

    /// <summary>APIService names whose spec.caBundle the operator keeps current (e.g. v1alpha1.subresources.kubecapture.io).</summary>
    public List<string> ApiServices { get; set; } = [];

    /// <summary>ValidatingWebhookConfiguration names whose every webhook's clientConfig.caBundle the operator keeps current.</summary>
    public List<string> ValidatingWebhookConfigurations { get; set; } = [];

    /// <summary>MutatingWebhookConfiguration names whose every webhook's clientConfig.caBundle the operator keeps current.</summary>
    public List<string> MutatingWebhookConfigurations { get; set; } = [];
}

public static class ServingCertificateModes
{
    public const string Managed = "Managed";
    public const string Mounted = "Mounted";
}
