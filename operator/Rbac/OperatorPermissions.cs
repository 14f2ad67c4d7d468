namespace KubeCapture.Operator.Rbac;

/// <summary>
/// One rule of what the operator may do: API group, resource (or subresource), verbs, why it needs
/// them, and the only objects it applies to (none: all). A name may hold <c>{fullname}</c>, the
/// chart's full name of the release (<see cref="Permission.ResourceNamesFor"/>).
/// </summary>
public sealed record Permission(string ApiGroup, string Resource, IReadOnlyList<string> Verbs, string Why, IReadOnlyList<string>? ResourceNames = null)
{
    public const string FullnamePlaceholder = "{fullname}";

    public IReadOnlyList<string> ResourceNamesFor(string fullname) =>
        (ResourceNames ?? []).Select(n => n.Replace(FullnamePlaceholder, fullname, StringComparison.Ordinal)).ToList();
}

/// <summary>
/// Every Kubernetes API permission the operator uses, in one place, with the reason for each. The
/// chart's ClusterRole and leader-election Role are held to these lists by a test, and another test
/// asks the real kube-apiserver what the operator's ServiceAccount may do and fails on anything
/// broader. Add a rule here when code starts calling a new API; never a wildcard, and Secrets read
/// only by name in the operator's own namespace (it creates the capture containers' token Secrets
/// but never reads one back).
/// </summary>
public static class OperatorPermissions
{
    /// <summary>Cluster-wide (the chart's ClusterRole): captures and their pods live in every namespace.</summary>
    public static readonly IReadOnlyList<Permission> ClusterWide =
    [
        new("kubecapture.io", "packetcaptures", ["get", "list", "watch", "create", "patch"], "watch captures; add and remove the finalizer (Finalizer/CaptureFinalizer); note which alerts took a recording's snapshots (annotation kubecapture.io/alert-snapshots: Alerts/AlertSnapshotClaims); create the capture an alert receiver's rule asks for an alert (Alerts/AlertCaptures), held to the policy and stamped with the operator as requester like any other"),
        new("kubecapture.io", "packetcaptures/status", ["update", "patch"], "report phase, conditions, targets and artifacts"),
        new("kubecapture.io", "packetcaptures/finalizers", ["update"], "set the finalizer where OwnerReferencesPermissionEnforcement admission runs"),
        new("", "pods", ["get", "list", "watch"], "resolve targets, see their IP, phase and capture container states"),
        new("", "pods/ephemeralcontainers", ["patch"], "add the capture container (Reconciliation/EphemeralContainerSpec)"),
        new("", "namespaces", ["get", "list", "watch"], "read the Pod Security labels before injecting (Reconciliation/PodSecurityPreflight)"),
        new("", "events", ["create"], "record what happened on the capture and its pods (Events/CaptureEvents)"),
        new("", "secrets", ["create"],
            "hand each capture container its upload token in a Secret of the capture's namespace, never a literal in the pod spec (Reconciliation/UploadTokenSecret); " +
            "and, in its own namespace, create its serving CA and certificate, the manifest-signing key pair, the upload token key and the alert receiver's token when missing. RBAC cannot limit create by name; create reads nothing"),
        new("apiregistration.k8s.io", "apiservices", ["get", "patch"], "keep the extension API's caBundle current (Certificates/CaBundlePublisher)", [SubresourcesApiService]),
        new("admissionregistration.k8s.io", "mutatingwebhookconfigurations", ["get", "patch"], "keep the requester-stamp webhook's caBundle current (Certificates/CaBundlePublisher)", [RequesterStampWebhooks]),
        new("admissionregistration.k8s.io", "validatingwebhookconfigurations", ["get", "patch"], "keep the requester-stamp guard webhook's caBundle current (Certificates/CaBundlePublisher)", [RequesterStampWebhooks]),
        new("authorization.k8s.io", "subjectaccessreviews", ["create"], "ask whether the user kube-apiserver names may get a capture's pcap (Subresources/AccessReview)"),
    ];

    /// <summary>In kube-system only (the chart's authentication-reader Role): kube-apiserver's front-proxy settings.</summary>
    public static readonly IReadOnlyList<Permission> KubeSystem =
    [
        new("", "configmaps", ["get"], "verify the front proxy's client certificate and read its user headers (Subresources/FrontProxyAuthenticator)", ["extension-apiserver-authentication"]),
    ];

    /// <summary>In the operator's own namespace only (the chart's Role): the leader Lease and the upload Leases, the serving certificate, the manifest-signing key.</summary>
    public static readonly IReadOnlyList<Permission> OwnNamespace =
    [
        new("coordination.k8s.io", "leases", ["get", "create", "update"], "hold the leader Lease (LeaderElection/LeaderGate)"),
        new("coordination.k8s.io", "leases", ["get", "list", "create", "update", "delete"],
            "own each target's upload with a Lease of its own, renewed while it streams and deleted after; list a capture's to tell their holders it stopped (Ingest/UploadOwnership). RBAC cannot limit create or list by name"),
        new("", "secrets", ["get", "update"], "read and renew its serving CA and certificate (Certificates/ServingCertificateSecret)", [ServingCertificateSecret]),
        new("", "secrets", ["get"], "read the manifest-signing key pair (Custody/SecretSigningKey)", [ManifestSigningKey]),
        new("", "secrets", ["get", "list", "watch"], "read the upload token key and follow its rotation (list and watch by name: Ingest/IngestTokenKeySecret)", [IngestTokenKeySecret]),
        new("", "secrets", ["get", "list", "watch"], "read the alert receiver's bearer token and follow its rotation (list and watch by name: Alerts/AlertReceiverToken); granted whether or not the receiver is on", [AlertReceiverSecret]),
        new("", "configmaps", ["get", "update"], "publish the manifest-signing public key (Custody/SecretSigningKey)", [ManifestSigningKey]),
        new("", "configmaps", ["create"], "create the ConfigMap with the manifest-signing public key when missing"),
    ];

    /// <summary>The extension API's APIService (its name is VERSION.GROUP).</summary>
    public const string SubresourcesApiService = "v1alpha1.subresources.kubecapture.io";

    /// <summary>The MutatingWebhookConfiguration and the ValidatingWebhookConfiguration of the requester stamp (Admission/), both by this name.</summary>
    public const string RequesterStampWebhooks = Permission.FullnamePlaceholder + "-requester-stamp";

    /// <summary>The Secret holding the operator's CA and serving certificate (ServingCertificate:SecretName in the chart).</summary>
    public const string ServingCertificateSecret = Permission.FullnamePlaceholder + "-serving-certificate";

    /// <summary>The Secret with the upload token key (Ingest:TokenKeySecret in the chart, ingest.tokenKey.secretName).</summary>
    public const string IngestTokenKeySecret = Permission.FullnamePlaceholder + "-ingest-token";

    /// <summary>The Secret with the alert receiver's bearer token (AlertReceiver:SecretName in the chart, alertReceiver.existingSecret).</summary>
    public const string AlertReceiverSecret = Permission.FullnamePlaceholder + "-alert-receiver";

    /// <summary>The Secret with the manifest-signing key pair, and the ConfigMap with its public key (Custody/SecretSigningKey).</summary>
    public const string ManifestSigningKey = KubeCapture.Operator.Custody.SecretSigningKey.Name;
}
