using System.Collections.Concurrent;
using System.IO.Compression;
using System.Net;
using Google.Protobuf;
using KubeCapture.Operator.Tests.Tracing.Otlp;
using KubeCapture.Testing.S3;

namespace KubeCapture.Operator.Tests.Tracing;

/// <summary>
/// An OTLP/HTTP trace receiver, as a collector serves it: <c>POST /v1/traces</c> with an
/// ExportTraceServiceRequest in protobuf (gzip or not), answered 200 with an empty
/// ExportTraceServiceResponse; anything else 404/415. Keeps every span it received, with its
/// resource's service.name. An operator exports to it with OTEL_EXPORTER_OTLP_ENDPOINT=<see cref="Endpoint"/>
/// and OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf.
/// </summary>
public sealed class OtlpTraceReceiver : IDisposable
{
    private readonly HttpListener listener = new();
    private readonly ConcurrentQueue<ReceivedSpan> spans = new();
    private readonly Task serving;

    public OtlpTraceReceiver()
    {
        var port = S3rverFixture.FreeTcpPort();
        Endpoint = $"http://127.0.0.1:{port}";
        listener.Prefixes.Add($"{Endpoint}/");
        listener.Start();
        serving = Task.Run(ServeAsync);
    }

    /// <summary>The base URL (the exporter appends /v1/traces).</summary>
    public string Endpoint { get; }

    /// <summary>Export requests that were not a valid ExportTraceServiceRequest (a test asserts none).</summary>
    public int Malformed { get; private set; }

    /// <summary>The environment an operator process needs to export here, promptly (batches every 200 ms).</summary>
    public IReadOnlyDictionary<string, string> ExporterEnvironment => new Dictionary<string, string>
    {
        ["OTEL_EXPORTER_OTLP_ENDPOINT"] = Endpoint,
        ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
        ["OTEL_BSP_SCHEDULE_DELAY"] = "200",
    };

    public IReadOnlyList<ReceivedSpan> Spans => [.. spans];

    /// <summary>Until <paramref name="until"/> holds for the spans received (within <paramref name="timeout"/>).</summary>
    public async Task<IReadOnlyList<ReceivedSpan>> WaitAsync(Func<IReadOnlyList<ReceivedSpan>, bool> until, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var now = Spans;
            if (until(now))
            {
                return now;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"no {what} within {timeout.TotalSeconds} s; {now.Count} spans received: {string.Join(", ", now.Select(s => s.Name).Distinct())}");
            }

            await Task.Delay(100);
        }
    }

    private async Task ServeAsync()
    {
        while (listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            using var response = context.Response;
            var request = context.Request;
            if (request.HttpMethod != "POST" || request.Url?.AbsolutePath != "/v1/traces")
            {
                response.StatusCode = 404;
                continue;
            }

            if (request.ContentType?.StartsWith("application/x-protobuf", StringComparison.Ordinal) != true)
            {
                response.StatusCode = 415;
                continue;
            }

            try
            {
                using var body = new MemoryStream();
                var input = request.Headers["Content-Encoding"] == "gzip" ? new GZipStream(request.InputStream, CompressionMode.Decompress) : request.InputStream;
                await input.CopyToAsync(body);
                Receive(ExportTraceServiceRequest.Parser.ParseFrom(body.ToArray()));
            }
            catch (InvalidProtocolBufferException)
            {
                Malformed++;
                response.StatusCode = 400;
                continue;
            }

            response.StatusCode = 200;
            response.ContentType = "application/x-protobuf";
            var answer = new ExportTraceServiceResponse().ToByteArray();
            await response.OutputStream.WriteAsync(answer);
        }
    }

    private void Receive(ExportTraceServiceRequest request)
    {
        foreach (var resource in request.ResourceSpans)
        {
            var service = resource.Resource?.Attributes.FirstOrDefault(a => a.Key == "service.name")?.Value?.StringValue;
            foreach (var scope in resource.ScopeSpans)
            {
                foreach (var span in scope.Spans)
                {
                    spans.Enqueue(new ReceivedSpan(
                        Convert.ToHexStringLower(span.TraceId.Span),
                        Convert.ToHexStringLower(span.SpanId.Span),
                        span.ParentSpanId.IsEmpty ? null : Convert.ToHexStringLower(span.ParentSpanId.Span),
                        span.Name,
                        span.Kind,
                        scope.Scope?.Name,
                        service,
                        span.Attributes.Where(a => a.Value?.ValueCase == AnyValue.ValueOneofCase.StringValue).ToDictionary(a => a.Key, a => a.Value.StringValue)));
                }
            }
        }
    }

    public void Dispose()
    {
        listener.Stop();
        listener.Close();
        serving.Wait(TimeSpan.FromSeconds(5));
    }
}

/// <summary>One span as an exporter sent it: ids in lowercase hex (as in a traceparent), its string attributes.</summary>
public sealed record ReceivedSpan(string TraceId, string SpanId, string? ParentSpanId, string Name, SpanKind Kind, string? Scope, string? Service, IReadOnlyDictionary<string, string> Attributes);
