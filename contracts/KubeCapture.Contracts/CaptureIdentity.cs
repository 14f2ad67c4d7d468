namespace KubeCapture.Contracts;

/// <summary>Who a capture target is: the PacketCapture (UID, namespace, name) and one target pod.</summary>
public sealed record CaptureIdentity(string CaptureUid, string Namespace, string CaptureName, string Pod);
