using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using k8s;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace KubeCapture.Testing.Kubernetes;

/// <summary>
/// An in-process Kubernetes API server at HTTP level, on 127.0.0.1 and a free port: the real API
/// paths for namespaces, pods (with the status and ephemeralcontainers subresources), events,
/// leases and packetcaptures; get/list/watch/create/update/patch/delete; resourceVersion on every
/// write, 409 on stale updates, watches with bookmarks and 410 Gone; and fault injection. The real
/// KubernetesClient talks to it through <see cref="ClientConfiguration"/>.
/// </summary>
public sealed class KubernetesApiEmulator : IAsyncDisposable
{
    private static readonly byte[] NewLine = "\n"u8.ToArray();
    private readonly WebApplication app;
    private readonly CancellationTokenSource stopping = new();
    private readonly Task bookmarkLoop;

    private KubernetesApiEmulator(WebApplication app, string url)
    {
        this.app = app;
        Url = url;
        bookmarkLoop = Task.Run(SendBookmarksAsync);
    }

    public string Url { get; }

    public ObjectStore Store { get; } = new();

    public ApiFaults Faults { get; } = new();

    /// <summary>How often watches that asked for bookmarks get one.</summary>
    public TimeSpan BookmarkInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Every request served, as "METHOD path?query", for tests that check what a client sent.</summary>
    public IReadOnlyList<string> Requests
    {
        get
        {
            lock (requests)
            {
                return [.. requests];
            }
        }
    }

    /// <summary>Every request served with the time it arrived, for tests that check when a client retried.</summary>
    public IReadOnlyList<(DateTimeOffset At, string Request)> TimedRequests
    {
        get
        {
            lock (requests)
            {
                return [.. requestTimes.Zip(requests)];
            }
        }
    }

    private readonly List<string> requests = [];
    private readonly List<DateTimeOffset> requestTimes = [];

    public KubernetesClientConfiguration ClientConfiguration => new() { Host = Url };

    public IKubernetes CreateClient() => new k8s.Kubernetes(ClientConfiguration);

    public static async Task<KubernetesApiEmulator> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        // The emulator is configured by this code alone: an appsettings.json beside the tests (the
        // operator's, with its Kestrel endpoints) must not move it off its loopback port.
        builder.Configuration.Sources.Clear();
        Microsoft.Extensions.Configuration.MemoryConfigurationBuilderExtensions.AddInMemoryCollection(builder.Configuration);
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        KubernetesApiEmulator? emulator = null;
        app.Run(context => emulator!.HandleAsync(context));
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        emulator = new KubernetesApiEmulator(app, address);
        return emulator;
    }

    /// <summary>Adds a namespace with labels (e.g. pod-security.kubernetes.io/enforce).</summary>
    public JsonObject AddNamespace(string name, IReadOnlyDictionary<string, string>? labels = null)
    {
        var labelObject = new JsonObject { ["kubernetes.io/metadata.name"] = name };
        foreach (var (k, v) in labels ?? new Dictionary<string, string>())
        {
            labelObject[k] = v;
        }

        return Store.Create(ResourceType.Namespaces, "", new JsonObject { ["metadata"] = new JsonObject { ["name"] = name, ["labels"] = labelObject } });
    }

    /// <summary>Adds a pod as a scheduler and kubelet would leave it: on a node, in a phase, with an IP.</summary>
    public JsonObject AddPod(string ns, string name, string phase = "Running", IReadOnlyDictionary<string, string>? labels = null,
        string node = "node-1", string os = "linux", string podIp = "169.254.0.2", bool hostNetwork = false)
    {
        var labelObject = new JsonObject();
        foreach (var (k, v) in labels ?? new Dictionary<string, string>())
        {
            labelObject[k] = v;
        }

        var pod = new JsonObject
        {
            ["metadata"] = new JsonObject { ["name"] = name, ["labels"] = labelObject },
            ["spec"] = new JsonObject
            {
                ["nodeName"] = node,
                ["os"] = new JsonObject { ["name"] = os },
                ["containers"] = new JsonArray(new JsonObject { ["name"] = "app", ["image"] = "registry.example/app:1" }),
            },
            ["status"] = new JsonObject { ["phase"] = phase, ["podIP"] = podIp, ["podIPs"] = new JsonArray(new JsonObject { ["ip"] = podIp }) },
        };
        if (hostNetwork)
        {
            pod["spec"]!["hostNetwork"] = true;
        }

        return Store.Create(ResourceType.Pods, ns, pod);
    }

    public async ValueTask DisposeAsync()
    {
        await stopping.CancelAsync();
        Store.DropWatches();
        await bookmarkLoop;
        await app.StopAsync();
        await app.DisposeAsync();
        stopping.Dispose();
    }

    private async Task SendBookmarksAsync()
    {
        try
        {
            while (!stopping.IsCancellationRequested)
            {
                await Task.Delay(BookmarkInterval, stopping.Token);
                Store.SendBookmarks();
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        var path = request.Path.Value ?? "/";
        lock (requests)
        {
            requests.Add($"{request.Method} {path}{request.QueryString}");
            requestTimes.Add(DateTimeOffset.UtcNow);
        }

        try
        {
            if (Faults.Latency > TimeSpan.Zero)
            {
                await Task.Delay(Faults.Latency, context.RequestAborted);
            }

            if (Faults.TakeFault(request.Method, path) is var (failure, retryAfter))
            {
                if (retryAfter is { } wait)
                {
                    context.Response.Headers.RetryAfter = ((int)Math.Ceiling(wait.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
                }

                throw new ApiException(failure, failure == HttpStatusCode.InternalServerError ? "InternalError" : failure == HttpStatusCode.TooManyRequests ? "TooManyRequests" : failure.ToString(), $"injected fault: {(int)failure}");
            }

            var route = Route.Parse(path) ?? throw new ApiException(HttpStatusCode.NotFound, "NotFound", $"the server could not find the requested resource ({path})");
            if (Faults.TakeLostAnswer(request.Method, path))
            {
                // Carried out in a context of its own whose answer goes nowhere: the client sees a gateway timeout.
                var carriedOut = new DefaultHttpContext();
                carriedOut.Request.Method = request.Method;
                carriedOut.Request.Path = request.Path;
                carriedOut.Request.QueryString = request.QueryString;
                carriedOut.Request.ContentType = request.ContentType;
                carriedOut.Request.Body = request.Body;
                carriedOut.Response.Body = Stream.Null;
                await DispatchAsync(carriedOut, route);
                throw new ApiException(HttpStatusCode.GatewayTimeout, "Timeout", "injected fault: the answer was lost after the request was carried out");
            }

            await DispatchAsync(context, route);
        }
        catch (ApiException e)
        {
            if (!context.Response.HasStarted)
            {
                await WriteStatusAsync(context.Response, e.Code, e.Reason, e.Message);
            }
        }
        catch (JsonException e)
        {
            await WriteStatusAsync(context.Response, HttpStatusCode.BadRequest, "BadRequest", $"invalid JSON: {e.Message}");
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested || stopping.IsCancellationRequested)
        {
        }
        catch (Exception e) when (!context.Response.HasStarted)
        {
            // A bug in the emulator: say so in the Status instead of an empty 500.
            await WriteStatusAsync(context.Response, HttpStatusCode.InternalServerError, "InternalError", $"emulator: {e}");
        }
    }

    private async Task DispatchAsync(HttpContext context, Route route)
    {
        var request = context.Request;
        var query = request.Query;
        var type = route.Type;
        var ns = route.Namespace ?? "";
        switch (request.Method, route.Name, route.Subresource)
        {
            case ("GET", null, null) when IsTrue(query["watch"]):
                await WatchAsync(context, route);
                return;
            case ("GET", null, null):
                var match = Selectors.Parse(query["labelSelector"], query["fieldSelector"]);
                var (items, version) = Store.List(type, type.Namespaced ? route.Namespace : null, match);
                await WriteJsonAsync(context.Response, HttpStatusCode.OK, new JsonObject
                {
                    ["kind"] = type.Kind + "List",
                    ["apiVersion"] = type.ApiVersion,
                    ["metadata"] = new JsonObject { ["resourceVersion"] = version.ToString(CultureInfo.InvariantCulture) },
                    ["items"] = new JsonArray([.. items]),
                });
                return;
            case ("POST", null, null):
                await WriteJsonAsync(context.Response, HttpStatusCode.Created, Store.Create(type, ns, await ReadObjectAsync(request)));
                return;
            case ("GET", { } name, null or "status" or "ephemeralcontainers"):
                await WriteJsonAsync(context.Response, HttpStatusCode.OK, Store.Get(type, ns, name) ?? throw ObjectStore.NotFound(type, name));
                return;
            case ("PUT", { } name, var sub):
                await WriteJsonAsync(context.Response, HttpStatusCode.OK, Store.Update(type, ns, name, await ReadObjectAsync(request), sub));
                return;
            case ("PATCH", { } name, var sub):
                var patch = await JsonNode.ParseAsync(request.Body) ?? throw new ApiException(HttpStatusCode.BadRequest, "BadRequest", "empty patch");
                await WriteJsonAsync(context.Response, HttpStatusCode.OK, PatchObject(type, ns, name, sub, request.ContentType ?? "", patch));
                return;
            case ("DELETE", { } name, null):
                await WriteJsonAsync(context.Response, HttpStatusCode.OK, Store.Delete(type, ns, name));
                return;
            default:
                throw new ApiException(HttpStatusCode.MethodNotAllowed, "MethodNotAllowed", $"the server does not allow this method on the requested resource ({request.Method} {request.Path})");
        }
    }

    /// <summary>
    /// A patch without a resourceVersion applies to whatever is current: like the API server, retry
    /// on a conflict with a concurrent writer. A patch carrying one is a precondition (409 if stale).
    /// </summary>
    private JsonObject PatchObject(ResourceType type, string ns, string name, string? sub, string contentType, JsonNode patch)
    {
        var unconditional = (patch as JsonObject)?["metadata"]?["resourceVersion"] is null;
        for (var attempt = 0; ; attempt++)
        {
            var current = Store.Get(type, ns, name) ?? throw ObjectStore.NotFound(type, name);
            var patched = Patches.Apply(current, contentType, patch);
            if (unconditional && patched["metadata"] is JsonObject patchedMeta)
            {
                patchedMeta["resourceVersion"] = (string?)current["metadata"]!["resourceVersion"];
            }

            try
            {
                return Store.Update(type, ns, name, patched, sub);
            }
            catch (ApiException e) when (unconditional && e.Code == HttpStatusCode.Conflict && attempt < 10)
            {
            }
        }
    }

    private async Task WatchAsync(HttpContext context, Route route)
    {
        var query = context.Request.Query;
        var match = Selectors.Parse(query["labelSelector"], query["fieldSelector"]);
        var subscription = Store.Watch(route.Type, route.Type.Namespaced ? route.Namespace : null, query["resourceVersion"], IsTrue(query["allowWatchBookmarks"]), match);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, stopping.Token);
        if (int.TryParse(query["timeoutSeconds"], NumberStyles.None, CultureInfo.InvariantCulture, out var seconds) && seconds > 0)
        {
            timeout.CancelAfter(TimeSpan.FromSeconds(seconds));
        }

        var response = context.Response;
        response.StatusCode = 200;
        response.ContentType = "application/json";
        await response.StartAsync(timeout.Token);
        await response.Body.FlushAsync(timeout.Token);
        try
        {
            await foreach (var e in subscription.Events.ReadAllAsync(timeout.Token))
            {
                var line = new JsonObject { ["type"] = e.Type, ["object"] = e.Object.DeepClone() };
                await response.Body.WriteAsync(Encoding.UTF8.GetBytes(line.ToJsonString()), timeout.Token);
                await response.Body.WriteAsync(NewLine, timeout.Token);
                await response.Body.FlushAsync(timeout.Token);
            }
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            Store.Unsubscribe(subscription);
        }
    }

    private static bool IsTrue(string? value) => value is "1" or "true" or "True";

    private static async Task<JsonObject> ReadObjectAsync(HttpRequest request) =>
        await JsonNode.ParseAsync(request.Body) as JsonObject ?? throw new ApiException(HttpStatusCode.BadRequest, "BadRequest", "the body must be a JSON object");

    private static async Task WriteJsonAsync(HttpResponse response, HttpStatusCode code, JsonObject body)
    {
        response.StatusCode = (int)code;
        response.ContentType = "application/json";
        await response.WriteAsync(body.ToJsonString());
    }

    private static Task WriteStatusAsync(HttpResponse response, HttpStatusCode code, string reason, string message) =>
        WriteJsonAsync(response, code, new JsonObject
        {
            ["kind"] = "Status",
            ["apiVersion"] = "v1",
            ["metadata"] = new JsonObject(),
            ["status"] = "Failure",
            ["message"] = message,
            ["reason"] = reason,
            ["code"] = (int)code,
        });

    /// <summary>/api/v1/namespaces/NS/pods/NAME/SUB, /apis/G/V/PLURAL, ... split into its parts.</summary>
    private sealed record Route(ResourceType Type, string? Namespace, string? Name, string? Subresource)
    {
        public static Route? Parse(string path)
        {
            foreach (var type in ResourceType.All)
            {
                if (!path.StartsWith(type.PathPrefix + "/", StringComparison.Ordinal))
                {
                    continue;
                }

                var parts = path[(type.PathPrefix.Length + 1)..].Split('/', StringSplitOptions.RemoveEmptyEntries);
                if (type == ResourceType.Namespaces)
                {
                    if (parts is ["namespaces"])
                    {
                        return new Route(type, null, null, null);
                    }

                    if (parts.Length is 2 or 3 && parts[0] == "namespaces" && (parts.Length == 2 || parts[2] == "status"))
                    {
                        return new Route(type, null, parts[1], parts.ElementAtOrDefault(2));
                    }

                    continue;
                }

                if (parts.Length >= 3 && parts[0] == "namespaces" && parts[2] == type.Plural && parts.Length <= 5)
                {
                    return new Route(type, parts[1], parts.ElementAtOrDefault(3), parts.ElementAtOrDefault(4));
                }

                if (parts is [var plural] && plural == type.Plural)
                {
                    return new Route(type, null, null, null);
                }
            }

            return null;
        }
    }
}
