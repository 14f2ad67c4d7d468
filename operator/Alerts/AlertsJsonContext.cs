using System.Text.Json.Serialization;

namespace KubeCapture.Operator.Alerts;

[JsonSerializable(typeof(List<string>))]
[JsonSerializable(typeof(AnnotationPatch))]
internal sealed partial class AlertsJsonContext : JsonSerializerContext;
