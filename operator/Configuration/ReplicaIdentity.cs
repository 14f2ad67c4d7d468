namespace KubeCapture.Operator.Configuration;

/// <summary>
/// Who this operator replica is, for the Leases it holds (the leader Lease and each target upload's),
/// and the namespace they live in: the same for every Lease of the process.
/// </summary>
public static class ReplicaIdentity
{
    /// <summary><paramref name="configured"/>, else POD_NAME, else the machine name and process id.</summary>
    public static string Of(string? configured) => configured is { Length: > 0 } id ? id
        : Environment.GetEnvironmentVariable("POD_NAME") is { Length: > 0 } pod ? pod
        : $"{Environment.MachineName}-{Environment.ProcessId}";

    /// <summary><paramref name="configured"/>, else the operator's own namespace (POD_NAMESPACE), else "default".</summary>
    public static string NamespaceOf(string? configured) => configured is { Length: > 0 } ns ? ns
        : Environment.GetEnvironmentVariable("POD_NAMESPACE") is { Length: > 0 } own ? own : "default";
}
