namespace KubeCapture.Operator.Ingest;

/// <summary>The gRPC ingest (configuration section <c>Ingest</c>).</summary>
public sealed class IngestOptions
{
    public const string Section = "Ingest";

    /// <summary>
    /// The secret the per-capture tokens are derived from (any string; 32 random bytes in base64 is
    /// right). Every replica must share it, or a new leader rejects the agents of the old one. Empty:
    /// a random secret per process, which only suits a single replica that never restarts.
    /// </summary>
    public string TokenSecret { get; set; } = "";

    /// <summary>
    /// Serve the ingest over TLS with the serving certificate (ServingCertificate section), so captured
    /// bytes and upload tokens never cross the network in clear. false: plain h2c, only for local runs
    /// and tests (the ingest endpoint's URL must then be http://).
    /// </summary>
    public bool Tls { get; set; } = true;

    /// <summary>The address agents are given (the Service in front of the leader), e.g. https://kubecapture-ingest.kubecapture.svc:8081.</summary>
    public string AdvertisedUrl { get; set; } = "";

    /// <summary>
    /// Accept a target's upload only from the addresses of its pod (status.podIPs, as the reconciler
    /// reads them). Only a process without a reconciler (tests, a standalone ingest) turns this off:
    /// then anyone who can read the pod spec can upload as the target.
    /// </summary>
    public bool BindToPodAddress { get; set; } = true;

    /// <summary>How long an agent that disconnected mid-capture may take to come back before its upload is aborted.</summary>
    public TimeSpan ResumeWindow { get; set; } = TimeSpan.FromMinutes(2);
}
