using System.Text.Json.Serialization;
using k8s;
using k8s.Models;
using KubeCapture.Contracts.Capture;

namespace KubeCapture.Contracts.Resources;

/// <summary>
/// packetcaptures.kubecapture.io/v1alpha1: one audited, bounded packet capture of one or more pods
/// in the capture's own namespace. The CRD is charts/kubecapture/crds/packetcaptures.yaml.
/// </summary>
public sealed class PacketCapture : IKubernetesObject<V1ObjectMeta>, ISpec<PacketCaptureSpec>, IStatus<PacketCaptureStatus?>
{
    public const string Group = "kubecapture.io";
    public const string Version = "v1alpha1";
    public const string Plural = "packetcaptures";
    public const string KindName = "PacketCapture";
    public const string GroupVersion = Group + "/" + Version;

    [JsonPropertyName("apiVersion")]
    public string ApiVersion { get; set; } = GroupVersion;

    [JsonPropertyName("kind")]
    public string Kind { get; set; } = KindName;

    [JsonPropertyName("metadata")]
    public V1ObjectMeta Metadata { get; set; } = new();

    [JsonPropertyName("spec")]
    public PacketCaptureSpec Spec { get; set; } = new();

    [JsonPropertyName("status")]
    public PacketCaptureStatus? Status { get; set; }

    /// <summary>namespace/name: the work queue key.</summary>
    [JsonIgnore]
    public string Key => $"{Metadata.NamespaceProperty}/{Metadata.Name}";
}

public sealed class PacketCaptureList : IKubernetesObject<V1ListMeta>, IItems<PacketCapture>
{
    [JsonPropertyName("apiVersion")]
    public string ApiVersion { get; set; } = PacketCapture.GroupVersion;

    [JsonPropertyName("kind")]
    public string Kind { get; set; } = PacketCapture.KindName + "List";

    [JsonPropertyName("metadata")]
    public V1ListMeta Metadata { get; set; } = new();

    [JsonPropertyName("items")]
    public IList<PacketCapture> Items { get; set; } = [];
}

public sealed class PacketCaptureSpec
{
    /// <summary>Why this capture is taken; required, recorded for audit.</summary>
    [JsonPropertyName("reason")]
    public string Reason { get; set; } = "";

    [JsonPropertyName("target")]
    public CaptureTarget Target { get; set; } = new();

    /// <summary>Interface inside the pod, as tcpdump -i; "any" by default.</summary>
    [JsonPropertyName("interface")]
    public string? Interface { get; set; }

    /// <summary>A BPF filter in tcpdump syntax, compiled by libpcap.</summary>
    [JsonPropertyName("filter")]
    public string? Filter { get; set; }

    /// <summary>Bytes kept per packet, as tcpdump -s; 128 (headers) by default, 0 = whole packet.</summary>
    [JsonPropertyName("snaplen")]
    public int? Snaplen { get; set; }

    /// <summary>Stop after this many packets, as tcpdump -c.</summary>
    [JsonPropertyName("maxPackets")]
    public long? MaxPackets { get; set; }

    /// <summary>How long the capture runs at most: "30s", "5m".</summary>
    [JsonPropertyName("duration")]
    public string Duration { get; set; } = "";

    /// <summary>spec.maxBytes when a capture gives none.</summary>
    public const string DefaultMaxBytes = CaptureOptions.DefaultMaxBytesText;

    /// <summary>The pcap never grows past this size: "64Mi".</summary>
    [JsonPropertyName("maxBytes")]
    public string? MaxBytes { get; set; }

    [JsonPropertyName("retention")]
    public CaptureRetention? Retention { get; set; }

    /// <summary>Record instead of capture: keep the last minutes in memory, and packets only when a trigger fires.</summary>
    [JsonPropertyName("recorder")]
    public RecorderSpec? Recorder { get; set; }

    /// <summary>Set to true to stop early: the agents finish their pcaps and upload them.</summary>
    [JsonPropertyName("stop")]
    public bool? Stop { get; set; }
}

public sealed class CaptureTarget
{
    [JsonPropertyName("podName")]
    public string? PodName { get; set; }

    [JsonPropertyName("podSelector")]
    public V1LabelSelector? PodSelector { get; set; }
}

public sealed class CaptureRetention
{
    [JsonPropertyName("ttl")]
    public string? Ttl { get; set; }

    /// <summary>none, governance or compliance (S3 Object Lock until the ttl ends).</summary>
    [JsonPropertyName("lock")]
    public string? Lock { get; set; }

    [JsonPropertyName("legalHold")]
    public bool? LegalHold { get; set; }

    /// <summary>Whether the stored objects must be locked or held (and so the bucket must have Object Lock).</summary>
    [JsonIgnore]
    public bool NeedsObjectLock => Lock is "governance" or "compliance" || LegalHold == true;
}
