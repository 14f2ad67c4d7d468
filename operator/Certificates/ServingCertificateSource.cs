using System.Security.Cryptography.X509Certificates;

namespace KubeCapture.Operator.Certificates;

/// <summary>
/// The certificate HTTPS endpoints serve with right now (Kestrel's ServerCertificateSelector reads
/// <see cref="Current"/> on every handshake, so a renewal takes effect without a restart).
/// </summary>
public sealed class ServingCertificateSource : IIngestAuthority
{
    private readonly TaskCompletionSource ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile X509Certificate2? current;
    private volatile string? authorityPem;

    /// <summary>The serving certificate with its key; null until the first one is loaded.</summary>
    public X509Certificate2? Current => current;

    /// <summary>
    /// The PEM CA bundle clients verify <see cref="Current"/> against (Managed: the operator's CA and
    /// the previous one while valid; Mounted: ServingCertificate:CaFile); null until loaded, or when
    /// a mounted certificate comes without a CA file.
    /// </summary>
    public string? AuthorityPem => authorityPem;

    /// <summary>Completes when the first certificate is loaded.</summary>
    public Task Ready => ready.Task;

    public void Set(X509Certificate2 certificate, string? authorityBundlePem = null)
    {
        authorityPem = authorityBundlePem;
        // The previous certificate is left to the GC: a handshake in flight may still hold it.
        current = certificate;
        Metrics.OperatorMetrics.ObserveServingCertificate(certificate.NotAfter);
        ready.TrySetResult();
    }
}
