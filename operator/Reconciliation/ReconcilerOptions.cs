namespace KubeCapture.Operator.Reconciliation;

/// <summary>Configuration section "Reconciler": how captures are started and watched.</summary>
public sealed class ReconcilerOptions
{
    public const string Section = "Reconciler";

    /// <summary>The capture agent image injected as the ephemeral container.</summary>
    public string AgentImage { get; set; } = "ghcr.io/kubecapture/agent:0.1.0";

    /// <summary>The ingest URL agents stream to; empty: Ingest:AdvertisedUrl.</summary>
    public string IngestUrl { get; set; } = "";

    /// <summary>
    /// How the capture container gets its upload token (configuration key <c>Ingest:TokenDelivery</c>,
    /// chart <c>ingest.tokenDelivery</c>): Auto (Secret from Kubernetes 1.33 on, else PodSpec), Secret, PodSpec.
    /// </summary>
    public TokenDelivery TokenDelivery { get; set; } = TokenDelivery.Auto;

    /// <summary>Time after a capture's duration before silence turns it Failed ("60s").</summary>
    public string Grace { get; set; } = "60s";

    /// <summary>Ephemeral containers can never be removed: at most this many capture containers per pod.</summary>
    public int MaxCaptureContainersPerPod { get; set; } = 5;

    /// <summary>Captures reconciled in parallel.</summary>
    public int Workers { get; set; } = 4;

    /// <summary>
    /// How often an active capture is looked at even when nothing changed ("30s"): from the operator's
    /// caches, no API read (pod changes and ingest progress wake a capture at once; its deadline has a
    /// timer of its own).
    /// </summary>
    public string ResyncPeriod { get; set; } = "30s";

    /// <summary>
    /// At most one status write per capture this often ("10s") when only its progress changed (packet,
    /// byte and drop counters, findings so far): a capture with traffic would otherwise write its status
    /// every second. A change of phase or state is written at once. <c>follow</c> shows the packets live.
    /// </summary>
    public string ProgressInterval { get; set; } = "10s";

    /// <summary>
    /// Refuse to start a capture that the admission webhook did not stamp with its requester
    /// (condition RequesterVerified False, reason NotStamped). Default on, and on in the chart; off
    /// only where no webhook can run (tests against the HTTP-level API emulator).
    /// </summary>
    public bool RequireRequesterStamp { get; set; } = true;
}
