namespace KubeCapture.Operator.Configuration;

/// <summary>
/// A setting the operator cannot run with, found at start: Main prints its message as one sentence
/// and exits 2, with no stack trace (as kubecapture-agent does with bad input).
/// </summary>
public sealed class OperatorConfigurationException(string message) : InvalidOperationException(message);
