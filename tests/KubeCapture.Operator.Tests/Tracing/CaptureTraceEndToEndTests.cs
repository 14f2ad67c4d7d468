using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Tests.EndToEnd;
using KubeCapture.Operator.Tests.Subresources;
using KubeCapture.Operator.Tests.Tracing.Otlp;
using KubeCapture.Operator.Tracing;
using KubeCapture.Testing.Kubernetes;

namespace KubeCapture.Operator.Tests.Tracing;

/// <summary>
/// The operator's traces, exported with OTLP/HTTP by the real operator process of the shared cluster
/// to <see cref="OtlpTraceReceiver"/>, for a capture on the real kube-apiserver: one trace from the
/// reconcile that injects the capture container, through the agent's ingest stream, to the storage
/// writes in s3rver.
/// </summary>
[Collection(ApiServerClusterCollection.Name)]
public sealed class CaptureTraceEndToEndTests(SubresourcesCluster cluster)
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(90);

    [SkippableFact]
    public async Task One_trace_runs_from_the_reconcile_that_injects_through_the_agents_ingest_stream_to_the_storage_writes_with_each_span_the_child_of_the_one_before()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-e2e-trace");
        var pod = await cluster.StartPodAsync(ns, "api");
        // The agent from its image (scripts/images.sh builds it from this tree), run by the test kubelet in the pod's network namespace.
        await cluster.StartCaptureAsync(ns, "traced", PacketCaptureEndToEndTests.Icmp("follow one capture across the operator", "api", maxPackets: 4), Long);
        pod.PingFromClient(2);
        var done = await cluster.Admin.WaitForPhaseAsync(ns, "traced", CapturePhase.Succeeded, Long);

        var capture = $"{ns}/traced";
        // The ingest span ends last (its stream ends once the manifest is stored): its children were exported with it or before.
        var spans = await cluster.Traces.WaitAsync(
            all => all.Any(s => s.Name == "ingest" && s.Attributes.GetValueOrDefault("kubecapture.capture") == capture),
            TimeSpan.FromSeconds(30), $"the ingest span of {capture}");

        var inject = Assert.Single(spans, s => s.Name == "inject" && s.Attributes.GetValueOrDefault("kubecapture.capture") == capture);
        var trace = spans.Where(s => s.TraceId == inject.TraceId).ToList();
        Assert.All(trace, s => Assert.Equal(("kubecapture-operator", CaptureTracing.SourceName), (s.Service, s.Scope)));
        // reconcile (the root) → inject (the ephemeral-container patch) → ingest (the agent's stream) → storage writes.
        var reconcile = Assert.Single(trace, s => s.SpanId == inject.ParentSpanId);
        Assert.Equal(("reconcile", null, SpanKind.Internal), (reconcile.Name, reconcile.ParentSpanId, reconcile.Kind));
        Assert.Equal(capture, reconcile.Attributes["kubecapture.capture"]);
        Assert.Equal(("api", SpanKind.Client), (inject.Attributes["k8s.pod.name"], inject.Kind));
        var ingest = Assert.Single(trace, s => s.Name == "ingest");
        Assert.Equal((inject.SpanId, SpanKind.Server, "api"), (ingest.ParentSpanId, ingest.Kind, ingest.Attributes["k8s.pod.name"]));
        // Every storage request of the trace is the child of one of them: the writes of the pcap (multipart upload, its tags,
        // the manifest and the checkpoints) of the ingest, the reads the reconcile makes of the reconcile.
        var storage = trace.Where(s => s.Name.StartsWith("storage ", StringComparison.Ordinal)).ToList();
        Assert.All(storage, s => Assert.True(s.Kind == SpanKind.Client && (s.ParentSpanId == ingest.SpanId || s.ParentSpanId == reconcile.SpanId), $"{s.Name} has parent {s.ParentSpanId}"));
        var written = storage.Where(s => s.ParentSpanId == ingest.SpanId).Select(s => s.Name).ToHashSet();
        Assert.Superset(new HashSet<string> { "storage CreateMultipartUpload", "storage UploadPart", "storage CompleteMultipartUpload", "storage PutObjectTagging", "storage PutObject" }, written);
        Assert.Equal(0, cluster.Traces.Malformed);

        // The agent was handed exactly the inject span's context, in its container's env.
        var container = Assert.Single(await cluster.CaptureContainersAsync(ns, "api"));
        Assert.Equal($"00-{inject.TraceId}-{inject.SpanId}-01", Assert.Single(container.Env, e => e.Name == CaptureTracing.ParentVariable).Value);
        Assert.Equal(4L, Assert.Single(done.Status!.Targets).Packets);
    }
}
