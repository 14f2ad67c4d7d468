namespace KubeCapture.Contracts.Arguments;

/// <summary>A command line that cannot be run; the message is one line for people and the program exits 2.</summary>
public sealed class UsageException(string message) : Exception(message);
