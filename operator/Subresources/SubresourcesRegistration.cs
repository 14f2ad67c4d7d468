using KubeCapture.Contracts;
using KubeCapture.Operator.Certificates;
using KubeCapture.Operator.Configuration;
using KubeCapture.Operator.Health;
using KubeCapture.Operator.Ingest;
using Microsoft.Extensions.Options;

namespace KubeCapture.Operator.Subresources;

/// <summary>
/// builder.AddSubresources(): the extension API on its own HTTPS endpoint (Subresources:Url), with
/// the serving certificate (ServingCertificate section) and client certificates requested from
/// every peer (kube-apiserver's front proxy presents one; the handlers verify it).
/// </summary>
public static class SubresourcesRegistration
{
    public static WebApplicationBuilder AddSubresources(this WebApplicationBuilder builder)
    {
        var options = builder.Configuration.GetSection(SubresourcesOptions.Section).Get<SubresourcesOptions>() ?? new SubresourcesOptions();
        builder.AddHttpsEndpoint(SubresourcesOptions.Section, options.Url, "the extension API's Service", requestClientCertificates: true);
        builder.Services.AddOptions<SubresourcesOptions>().Bind(builder.Configuration.GetSection(SubresourcesOptions.Section));
        builder.Services.AddKubernetesClient();
        builder.Services.AddSingleton<FrontProxyAuthenticator>();
        builder.Services.AddSingleton<AccessReview>();
        builder.Services.AddSingleton<CaptureDownloads>();
        builder.Services.AddSingleton<CaptureSnapshots>();
        // With upload Leases (every replica ingests), a follow reaching a replica that does not hold the stream is relayed from the one that does.
        // (AddIngestAndStorage registered UploadOwnership before, when the replicas hold upload Leases.)
        if (builder.Services.Any(s => s.ServiceType == typeof(UploadOwnership)))
        {
            builder.Services.AddSingleton<StreamRelay>();
            if (RelayUrlOf(options.Url) is { } relay)
            {
                builder.Services.AddSingleton(new StreamRelayAddress(relay));
            }
        }

        builder.Services.AddSingleton<RelayCredential>();
        builder.Services.AddSingleton<RelayedFollows>();
        return builder;
    }

    /// <summary>
    /// Where the other replicas reach this one's live streams: the extension API's listener
    /// (<paramref name="url"/>, Subresources:Url) at this pod's address (POD_IP, or the listener's own
    /// address when it names one); null when neither gives an address another pod can dial.
    /// </summary>
    public static string? RelayUrlOf(string url)
    {
        var (listening, port) = HttpsEndpoints.ParseUrl(url, "Subresources:Url");
        var address = Environment.GetEnvironmentVariable("POD_IP") is { Length: > 0 } podIp && System.Net.IPAddress.TryParse(podIp, out var pod) ? pod
            : listening.Equals(System.Net.IPAddress.Any) || listening.Equals(System.Net.IPAddress.IPv6Any) ? null : listening;
        return address is null ? null : new UriBuilder("https", address.ToString(), port).Uri.ToString().TrimEnd('/');
    }

    public static WebApplication MapSubresources(this WebApplication app)
    {
        var port = HttpsEndpoints.ParseUrl(app.Services.GetRequiredService<IOptions<SubresourcesOptions>>().Value.Url, "Subresources:Url").Port;
        // Served on its own listener only, told by the local port: the Host header names the Service
        // port (443) when kube-apiserver reaches the APIService through its Service, not this one.
        RequestDelegate OnListener(RequestDelegate handler) => context =>
        {
            if (context.Connection.LocalPort != port)
            {
                context.Response.StatusCode = StatusCodes.Status404NotFound;
                return Task.CompletedTask;
            }

            return handler(context);
        };

        app.MapGet("/apis", OnListener(context => DiscoveryAsync(context, SubresourcesApi.GroupListDocument())));
        app.MapGet("/apis/" + ExtensionApi.Group, OnListener(context => DiscoveryAsync(context, SubresourcesApi.GroupDocument())));
        app.MapGet("/apis/" + ExtensionApi.GroupVersion, OnListener(context => DiscoveryAsync(context, SubresourcesApi.ResourceListDocument())));
        app.MapGet("/openapi/v2", OnListener(context => DiscoveryAsync(context, SubresourcesApi.OpenApiDocument())));
        app.MapGet($"/apis/{ExtensionApi.GroupVersion}/namespaces/{{ns}}/{ExtensionApi.Resource}/{{name}}/{{subresource}}", OnListener(context =>
        {
            var (ns, name, subresource) = ((string)context.Request.RouteValues["ns"]!, (string)context.Request.RouteValues["name"]!, (string)context.Request.RouteValues["subresource"]!);
            return ExtensionApi.Subresources.Contains(subresource)
                ? context.RequestServices.GetRequiredService<CaptureDownloads>().HandleAsync(context, ns, name, subresource)
                : SubresourcesApi.WriteStatusAsync(context, 404, "NotFound", $"the server could not find the requested resource: {ExtensionApi.Resource}/{subresource} (there are {string.Join(", ", ExtensionApi.Subresources)})");
        }));
        app.MapPost($"/apis/{ExtensionApi.GroupVersion}/namespaces/{{ns}}/{ExtensionApi.Resource}/{{name}}/{ExtensionApi.Snapshot}", OnListener(context =>
            context.RequestServices.GetRequiredService<CaptureSnapshots>().HandleAsync(context, (string)context.Request.RouteValues["ns"]!, (string)context.Request.RouteValues["name"]!)));
        app.MapGet(StreamRelay.Path, OnListener(context => context.RequestServices.GetRequiredService<RelayedFollows>().ServeAsync(context)));
        app.MapPost(StreamRelay.SnapshotPath, OnListener(context => context.RequestServices.GetRequiredService<RelayedFollows>().ServeSnapshotAsync(context)));
        return app;
    }

    /// <summary>Discovery and OpenAPI: for any peer with a verified front-proxy certificate (kube-apiserver asks with no user).</summary>
    private static async Task DiscoveryAsync(HttpContext context, System.Text.Json.Nodes.JsonNode document)
    {
        var (user, refusal) = await context.RequestServices.GetRequiredService<FrontProxyAuthenticator>().AuthenticateAsync(context, requireUser: false, context.RequestAborted);
        if (user is null)
        {
            await SubresourcesApi.WriteStatusAsync(context, 401, "Unauthorized", refusal!);
            return;
        }

        await SubresourcesApi.WriteJsonAsync(context, document);
    }
}
