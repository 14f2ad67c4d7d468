namespace KubeCapture.Operator.Ingest;

/// <summary>The gRPC ingest (configuration section <c>Ingest</c>).</summary>
public sealed class IngestOptions
{
    public const string Section = "Ingest";

    /// <summary>
    /// The Secret (in <see cref="TokenKeyNamespace"/>) holding the key the per-capture upload tokens
    /// are signed with, entries <c>current</c> and <c>previous</c> (<see cref="IngestTokenKeySecret"/>):
    /// created when missing, shared by every replica and restart, rotated without failing a capture.
    /// The chart sets it. In a cluster, or with the reconciler on, this or <see cref="TokenSecret"/>
    /// is required: the operator refuses to start without a stable key.
    /// </summary>
    public string TokenKeySecret { get; set; } = "";

    /// <summary>The namespace of <see cref="TokenKeySecret"/>; empty: LeaderElection:Namespace, POD_NAMESPACE, else "default".</summary>
    public string TokenKeyNamespace { get; set; } = "";

    /// <summary>
    /// A fixed secret the tokens are derived from instead of <see cref="TokenKeySecret"/> (any string):
    /// for an ingest run without Kubernetes (local runs, tests). Neither set: a random key per process,
    /// allowed only outside a cluster with the reconciler off (no agent outlives the process then).
    /// </summary>
    public string TokenSecret { get; set; } = "";

    /// <summary>
    /// Serve the ingest over TLS with the serving certificate (ServingCertificate section), so captured
    /// bytes and upload tokens never cross the network in clear. false: plain h2c, only for local runs
    /// and tests (the ingest endpoint's URL must then be http://).
    /// </summary>
    public bool Tls { get; set; } = true;

    /// <summary>The address agents are given (the Service in front of every replica), e.g. https://kubecapture-ingest.kubecapture.svc:8081.</summary>
    public string AdvertisedUrl { get; set; } = "";

    /// <summary>
    /// Accept a target's upload only from the addresses of its pod (status.podIPs, as the reconciler
    /// reads them). Only a process without a reconciler (tests, a standalone ingest) turns this off:
    /// then anyone who can read the pod spec can upload as the target.
    /// </summary>
    public bool BindToPodAddress { get; set; } = true;

    /// <summary>
    /// Decide which replica writes each target's upload with a Lease per target (<see cref="UploadOwnership"/>), so that
    /// every replica may ingest. On wherever the reconciler runs (a cluster deployment); a standalone ingest has no API to hold them in.
    /// </summary>
    public bool UploadLeases { get; set; } = true;

    /// <summary>How long a target's upload Lease holds without renewal before another replica may take the target over ("15s", as LeaderElection:LeaseDuration).</summary>
    public string UploadLeaseDuration { get; set; } = "15s";

    /// <summary>The holder writes nothing more when it could not renew the Lease for this long ("10s"): less than <see cref="UploadLeaseDuration"/>.</summary>
    public string UploadLeaseRenewDeadline { get; set; } = "10s";

    /// <summary>
    /// After this long without a frame from an agent ("10s", as the agent's own), the ingest sends it an
    /// HTTP/2 PING (Kestrel's keep-alive; every HTTP/2 listener of the process). Without it, a stream
    /// whose connection died silently (a network partition, a node gone without a FIN or RST) would be
    /// held, and its upload Lease renewed, until TCP gave up: the agent's resume on another replica
    /// refused all that time.
    /// </summary>
    public string KeepAlivePingDelay { get; set; } = "10s";

    /// <summary>A PING unanswered this long ("10s") ends the connection: its streams end and their upload Leases are released.</summary>
    public string KeepAlivePingTimeout { get; set; } = "10s";

    /// <summary>How long an agent that disconnected mid-capture may take to come back before its upload is aborted.</summary>
    public TimeSpan ResumeWindow { get; set; } = TimeSpan.FromMinutes(2);
}
