using System.Text.Json;

namespace KubeCapture.Operator.Provenance;

/// <summary>What the reconciler knows of a capture target that its manifest must record.</summary>
public sealed record TargetCustody
{
    public CaptureRequester? Requester { get; init; }

    public string? Reason { get; init; }

    public JsonElement? Spec { get; init; }

    public required TargetPodRecord Pod { get; init; }

    public string? AgentImage { get; init; }

    /// <summary>spec.retention.lock: none, governance or compliance.</summary>
    public string Lock { get; init; } = "none";

    public bool LegalHold { get; init; }
}
