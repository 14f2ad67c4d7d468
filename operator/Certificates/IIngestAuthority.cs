namespace KubeCapture.Operator.Certificates;

/// <summary>The CA a capture agent verifies a TLS ingest against.</summary>
public interface IIngestAuthority
{
    /// <summary>The CA bundle (PEM); null until the serving certificate is loaded, or when there is none.</summary>
    string? AuthorityPem { get; }
}

/// <summary>No serving certificate configured: the ingest is plain h2c, and there is no CA to hand agents.</summary>
public sealed class NoServingCertificate : IIngestAuthority
{
    public string? AuthorityPem => null;
}
