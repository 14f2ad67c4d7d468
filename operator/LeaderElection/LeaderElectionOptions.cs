namespace KubeCapture.Operator.LeaderElection;

/// <summary>Configuration section "LeaderElection": one replica reconciles at a time, holding a Lease.</summary>
public sealed class LeaderElectionOptions
{
    public const string Section = "LeaderElection";

    /// <summary>False: this process reconciles without a Lease (one replica, or tests).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>The Lease's namespace; empty: the operator's own (POD_NAMESPACE), else "default".</summary>
    public string Namespace { get; set; } = "";

    public string LeaseName { get; set; } = "kubecapture-operator";

    /// <summary>Who holds the Lease; empty: POD_NAME, else the machine name and process id.</summary>
    public string Identity { get; set; } = "";

    public string LeaseDuration { get; set; } = "15s";

    public string RenewDeadline { get; set; } = "10s";

    public string RetryPeriod { get; set; } = "2s";
}
