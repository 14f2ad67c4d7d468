using System.Text.Json.Nodes;

namespace KubeCapture.Operator.Provenance;

/// <summary>Someone other than the operator removed the capture finalizer with the break-glass annotation: who, why, and the capture as it was sent.</summary>
public sealed record BrokenGlass(string Namespace, string Name, string Uid, string Actor, string Why, JsonNode Capture);
