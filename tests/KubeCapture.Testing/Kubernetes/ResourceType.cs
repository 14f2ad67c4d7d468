namespace KubeCapture.Testing.Kubernetes;

/// <summary>A kind of object the emulated API server serves, and the semantics its endpoints follow.</summary>
public sealed record ResourceType(
    string Group,
    string Version,
    string Plural,
    string Kind,
    bool Namespaced,
    bool HasStatusSubresource,
    bool TracksGeneration)
{
    public static readonly ResourceType Namespaces = new("", "v1", "namespaces", "Namespace", false, true, false);
    public static readonly ResourceType Pods = new("", "v1", "pods", "Pod", true, true, false);
    public static readonly ResourceType Events = new("", "v1", "events", "Event", true, false, false);
    public static readonly ResourceType Leases = new("coordination.k8s.io", "v1", "leases", "Lease", true, false, false);
    public static readonly ResourceType Secrets = new("", "v1", "secrets", "Secret", true, false, false);

    /// <summary>The CRD packetcaptures.kubecapture.io/v1alpha1, with its status subresource.</summary>
    public static readonly ResourceType PacketCaptures = new("kubecapture.io", "v1alpha1", "packetcaptures", "PacketCapture", true, true, true);

    public static IReadOnlyList<ResourceType> All { get; } = [Namespaces, Pods, Events, Leases, Secrets, PacketCaptures];

    public string ApiVersion => Group.Length == 0 ? Version : $"{Group}/{Version}";

    /// <summary>/api/v1 or /apis/GROUP/VERSION.</summary>
    public string PathPrefix => Group.Length == 0 ? $"/api/{Version}" : $"/apis/{Group}/{Version}";
}
