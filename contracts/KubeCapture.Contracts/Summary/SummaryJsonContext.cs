using System.Text.Json.Serialization;

namespace KubeCapture.Contracts.Summary;

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(TcpSummaryReport))]
[JsonSerializable(typeof(List<Finding>))]
public sealed partial class SummaryJsonContext : JsonSerializerContext
{
}
