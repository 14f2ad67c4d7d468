namespace KubeCapture.Operator.Reconciliation;

/// <summary>Why a capture could not start (its Complete condition's reason, and the message users read).</summary>
public sealed record NotStarted(string Reason, string Message);
