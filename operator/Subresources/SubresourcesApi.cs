using System.Text.Json;
using System.Text.Json.Nodes;
using KubeCapture.Contracts;

namespace KubeCapture.Operator.Subresources;

/// <summary>
/// subresources.kubecapture.io/v1alpha1: the names, the discovery documents kube-apiserver asks
/// for (an APIService becomes Available once the version's APIResourceList answers), a minimal
/// OpenAPI v2 document, and errors as Kubernetes Status objects.
/// </summary>
public static class SubresourcesApi
{
    public static JsonObject GroupDocument() => new()
    {
        ["kind"] = "APIGroup",
        ["apiVersion"] = "v1",
        ["name"] = ExtensionApi.Group,
        ["versions"] = new JsonArray(VersionEntry()),
        ["preferredVersion"] = VersionEntry(),
    };

    public static JsonObject GroupListDocument() => new()
    {
        ["kind"] = "APIGroupList",
        ["apiVersion"] = "v1",
        ["groups"] = new JsonArray(GroupDocument().Tap(g => g.Remove("kind")).Tap(g => g.Remove("apiVersion"))),
    };

    /// <summary>
    /// The version's resources: the parent <c>packetcaptures</c> (no verbs of its own: it is the
    /// kubecapture.io resource's, and nothing lists, watches or deletes it here, so the garbage
    /// collector and namespace deletion leave it alone) and its subresources. Without the parent,
    /// kube-apiserver's aggregated discovery has nothing to hang the subresources on, and
    /// <c>kubectl auth can-i get packetcaptures.subresources.kubecapture.io --subresource=pcap</c> answers
    /// "no" with a warning that the resource type does not exist.
    /// </summary>
    public static JsonObject ResourceListDocument() => new()
    {
        ["kind"] = "APIResourceList",
        ["apiVersion"] = "v1",
        ["groupVersion"] = ExtensionApi.GroupVersion,
        ["resources"] = new JsonArray([
            new JsonObject
            {
                ["name"] = ExtensionApi.Resource,
                ["singularName"] = "packetcapture",
                ["namespaced"] = true,
                ["kind"] = "PacketCaptureSubresources",
                ["verbs"] = new JsonArray(),
            },
            .. ExtensionApi.Subresources.Select(s => (JsonNode)new JsonObject
            {
                ["name"] = $"{ExtensionApi.Resource}/{s}",
                ["singularName"] = "",
                ["namespaced"] = true,
                ["kind"] = s == ExtensionApi.Manifest ? "StoredCaptureManifest" : "Pcap",
                ["verbs"] = new JsonArray("get"),
            }),
            new JsonObject
            {
                ["name"] = $"{ExtensionApi.Resource}/{ExtensionApi.Snapshot}",
                ["singularName"] = "",
                ["namespaced"] = true,
                ["kind"] = "Status",
                ["verbs"] = new JsonArray("create"),
            },
        ]),
    };

    public static JsonObject OpenApiDocument() => new()
    {
        ["swagger"] = "2.0",
        ["info"] = new JsonObject { ["title"] = "KubeCapture subresources", ["version"] = ExtensionApi.Version },
        ["paths"] = new JsonObject(),
        ["definitions"] = new JsonObject(),
    };

    /// <summary>The message of a Kubernetes Status another replica answered with, or the answer itself when it is not one.</summary>
    public static string MessageOf(string answer)
    {
        try
        {
            return JsonNode.Parse(answer)?["message"]?.GetValue<string>() ?? answer;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            return answer;
        }
    }

    /// <summary>Writes a Kubernetes Status (kind Status, status Failure) with <paramref name="code"/>, as kubectl shows it: "Error from server (REASON): MESSAGE".</summary>
    public static async Task WriteStatusAsync(HttpContext context, int code, string reason, string message, string? name = null)
    {
        var status = new JsonObject
        {
            ["kind"] = "Status",
            ["apiVersion"] = "v1",
            ["metadata"] = new JsonObject(),
            ["status"] = "Failure",
            ["message"] = message,
            ["reason"] = reason,
            ["code"] = code,
        };
        if (name is not null)
        {
            status["details"] = new JsonObject { ["name"] = name, ["group"] = ExtensionApi.Group, ["kind"] = ExtensionApi.Resource };
        }

        context.Response.StatusCode = code;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(status.ToJsonString(), context.RequestAborted);
    }

    /// <summary>
    /// Denied (403, as kube-apiserver words it) unless <paramref name="allowed"/>; else the PacketCapture
    /// the request names, or null once a 404 was written. The SubjectAccessReview's outcome comes first,
    /// so a user without the right learns nothing of the capture.
    /// </summary>
    public static async Task<KubeCapture.Contracts.Resources.PacketCapture?> ReadCaptureAsync(HttpContext context, k8s.IKubernetes kubernetes, RemoteUser user, bool allowed, string verb, string ns, string name, string subresource)
    {
        if (!allowed)
        {
            await WriteStatusAsync(context, 403, "Forbidden",
                $"{ExtensionApi.Resource}.{ExtensionApi.Group} \"{name}\" is forbidden: User \"{user.Name}\" cannot {verb} resource \"{ExtensionApi.Resource}/{subresource}\" in API group \"{ExtensionApi.Group}\" in the namespace \"{ns}\"", name);
            return null;
        }

        try
        {
            return await k8s.CustomObjectsOperationsExtensions.GetNamespacedCustomObjectAsync<KubeCapture.Contracts.Resources.PacketCapture>(kubernetes.CustomObjects,
                KubeCapture.Contracts.Resources.PacketCapture.Group, KubeCapture.Contracts.Resources.PacketCapture.Version, ns, KubeCapture.Contracts.Resources.PacketCapture.Plural, name, cancellationToken: context.RequestAborted);
        }
        catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            await WriteStatusAsync(context, 404, "NotFound", $"{KubeCapture.Contracts.Resources.PacketCapture.Plural}.{KubeCapture.Contracts.Resources.PacketCapture.Group} \"{name}\" not found", name);
            return null;
        }
    }

    public static Task WriteJsonAsync(HttpContext context, JsonNode document)
    {
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(document.ToJsonString(new JsonSerializerOptions { WriteIndented = false }), context.RequestAborted);
    }

    private static JsonObject VersionEntry() => new() { ["groupVersion"] = ExtensionApi.GroupVersion, ["version"] = ExtensionApi.Version };

    private static JsonObject Tap(this JsonObject node, Action<JsonObject> change)
    {
        change(node);
        return node;
    }
}
