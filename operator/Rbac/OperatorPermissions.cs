namespace KubeCapture.Operator.Rbac;

/// <summary>One rule of what the operator may do: API group, resource (or subresource), verbs, and why it needs them.</summary>
public sealed record Permission(string ApiGroup, string Resource, IReadOnlyList<string> Verbs, string Why);

/// <summary>
/// Every Kubernetes API permission the operator uses, in one place, with the reason for each. The
/// chart's ClusterRole and leader-election Role are held to these lists by a test, and another test
/// asks the real kube-apiserver what the operator's ServiceAccount may do and fails on anything
/// broader. Add a rule here when code starts calling a new API; never a wildcard, and Secrets only in its own namespace.
/// </summary>
public static class OperatorPermissions
{
    /// <summary>Cluster-wide (the chart's ClusterRole): captures and their pods live in every namespace.</summary>
    public static readonly IReadOnlyList<Permission> ClusterWide =
    [
        new("kubecapture.io", "packetcaptures", ["get", "list", "watch", "patch"], "watch captures; add and remove the finalizer (Finalizer/CaptureFinalizer)"),
        new("kubecapture.io", "packetcaptures/status", ["update", "patch"], "report phase, conditions, targets and artifacts"),
        new("kubecapture.io", "packetcaptures/finalizers", ["update"], "set the finalizer where OwnerReferencesPermissionEnforcement admission runs"),
        new("", "pods", ["get", "list", "watch"], "resolve targets, see their IP, phase and capture container states"),
        new("", "pods/ephemeralcontainers", ["patch"], "add the capture container (Reconciliation/EphemeralContainerSpec)"),
        new("", "namespaces", ["get", "list", "watch"], "read the Pod Security labels before injecting (Reconciliation/PodSecurityPreflight)"),
        new("", "events", ["create"], "record what happened on the capture and its pods (Events/CaptureEvents)"),
    ];

    /// <summary>In the operator's own namespace only (the chart's Role): the leader Lease and the manifest-signing key.</summary>
    public static readonly IReadOnlyList<Permission> OwnNamespace =
    [
        new("coordination.k8s.io", "leases", ["get", "create", "update"], "hold the leader Lease (LeaderElection/LeaderGate)"),
        new("", "secrets", ["get", "create"], "keep the manifest-signing key pair (Custody/SecretSigningKey)"),
        new("", "configmaps", ["get", "create", "update"], "publish the manifest-signing public key (Custody/SecretSigningKey)"),
    ];
}
