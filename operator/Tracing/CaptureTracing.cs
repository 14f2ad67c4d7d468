using System.Diagnostics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace KubeCapture.Operator.Tracing;

/// <summary>
/// One trace per capture target, from the reconcile that adds its capture container to the pcap
/// stored: spans <c>reconcile</c> (one per reconcile of a PacketCapture), its child <c>inject</c>
/// (the pods/ephemeralcontainers patch), whose W3C trace context goes to the agent in the container's
/// <see cref="ParentVariable"/>; the agent sends it back as gRPC metadata <see cref="ParentHeader"/> on
/// its ingest stream, where <c>ingest</c> continues the trace, and each object storage request
/// (part uploads, complete, manifest) is a child <c>storage OPERATION</c>. ActivitySource
/// <see cref="SourceName"/>; exported with OTLP only when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is
/// configured (the chart's <c>tracing.otlpEndpoint</c>): otherwise no span is even created.
/// </summary>
public static class CaptureTracing
{
    public const string SourceName = "KubeCapture.Operator";

    /// <summary>The standard OTLP exporter setting (an environment variable, or any configuration source).</summary>
    public const string EndpointSetting = "OTEL_EXPORTER_OTLP_ENDPOINT";

    /// <summary>The environment variable of the capture container carrying the inject span's context.</summary>
    public const string ParentVariable = "TRACEPARENT";

    /// <summary>The gRPC metadata key the agent sends it in (W3C Trace Context).</summary>
    public const string ParentHeader = "traceparent";

    public static readonly ActivitySource Source = new(SourceName);

    /// <summary>Exports the spans with OTLP when <see cref="EndpointSetting"/> is set; the exporter reads its OTEL_EXPORTER_OTLP_* settings.</summary>
    public static void AddCaptureTracing(this WebApplicationBuilder builder)
    {
        if (string.IsNullOrWhiteSpace(builder.Configuration[EndpointSetting]))
        {
            return;
        }

        builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(serviceName: "kubecapture-operator", serviceInstanceId: Environment.GetEnvironmentVariable("POD_NAME")))
            .WithTracing(tracing => tracing.AddSource(SourceName).AddOtlpExporter());
    }

    /// <summary>A span per reconcile of one PacketCapture: the root of its trace.</summary>
    public static Activity? StartReconcile(string key) =>
        Source.StartActivity("reconcile", ActivityKind.Internal, parentContext: default, tags: [new("kubecapture.capture", key)]);

    /// <summary>The ephemeral-container patch of one target pod (a child of the reconcile).</summary>
    public static Activity? StartInject(string ns, string capture, string pod) =>
        Source.StartActivity("inject", ActivityKind.Client, parentContext: default,
            tags: [new("kubecapture.capture", $"{ns}/{capture}"), new("k8s.pod.name", pod)]);

    /// <summary>
    /// One agent stream, continuing the trace the agent was given (its <paramref name="traceParent"/>);
    /// without one (or one that does not parse), a trace of its own. Never a child of ASP.NET Core's
    /// request activity: with no listener that one is not recorded, and its children would be dropped.
    /// </summary>
    public static Activity? StartIngest(string? traceParent, string ns, string capture, string pod)
    {
        if (!ActivityContext.TryParse(traceParent, null, isRemote: true, out var parent))
        {
            // A root: the stream's own (the handler ends with it, so nothing needs the request activity back).
            Activity.Current = null;
            parent = default;
        }

        return Source.StartActivity("ingest", ActivityKind.Server, parent,
            tags: [new("kubecapture.capture", $"{ns}/{capture}"), new("k8s.pod.name", pod)]);
    }

    /// <summary>One object storage request (a child of whatever is current: the ingest's stream, or a reconcile).</summary>
    public static Activity? StartStorage(string operation) =>
        Source.StartActivity($"storage {operation}", ActivityKind.Client, parentContext: default, tags: [new("kubecapture.storage.operation", operation)]);
}
