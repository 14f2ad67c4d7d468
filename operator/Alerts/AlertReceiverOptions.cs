namespace KubeCapture.Operator.Alerts;

/// <summary>Configuration section "AlertReceiver": the Alertmanager webhook receiver (chart <c>alertReceiver.*</c>).</summary>
public sealed class AlertReceiverOptions
{
    public const string Section = "AlertReceiver";

    /// <summary>Serve the receiver (on the extension API's HTTPS listener: needs Subresources:Enabled).</summary>
    public bool Enabled { get; set; }

    /// <summary>The Secret with the bearer token (entry <c>token</c>), in <see cref="Namespace"/>.</summary>
    public string SecretName { get; set; } = "";

    /// <summary>The operator's namespace; empty: LeaderElection:Namespace, POD_NAMESPACE, else "default".</summary>
    public string Namespace { get; set; } = "";

    /// <summary>Create the Secret with a random token when it is missing (the chart's own; false for alertReceiver.existingSecret).</summary>
    public bool CreateSecret { get; set; } = true;

    /// <summary>The rules that create a capture for an alert about a pod no recording records: a JSON list (<see cref="AlertCaptureRule"/>); empty: none.</summary>
    public string CaptureRules { get; set; } = "";
}
