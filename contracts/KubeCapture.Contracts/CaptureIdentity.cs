using System.Text.Json.Serialization;

namespace KubeCapture.Contracts;

/// <summary>
/// Who a capture target is: the PacketCapture (UID, namespace, name) and one target pod; with
/// <paramref name="Snapshot"/> N &gt; 0, snapshot N of that target's flight recording (an upload and a
/// stored object of its own, under the target's token and binding).
/// </summary>
public sealed record CaptureIdentity(
    string CaptureUid,
    string Namespace,
    string CaptureName,
    string Pod,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] int Snapshot = 0)
{
    /// <summary>The capture target itself (its pod): what its token, its binding and its custody are issued for.</summary>
    [JsonIgnore]
    public CaptureIdentity Target => Snapshot == 0 ? this : this with { Snapshot = 0 };
}
