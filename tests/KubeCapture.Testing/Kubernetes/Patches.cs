using System.Net;
using System.Text.Json.Nodes;

namespace KubeCapture.Testing.Kubernetes;

/// <summary>The three PATCH content types the API server accepts from clients, applied to a JSON object.</summary>
public static class Patches
{
    public const string MergePatch = "application/merge-patch+json";
    public const string StrategicMergePatch = "application/strategic-merge-patch+json";
    public const string JsonPatch = "application/json-patch+json";

    public static JsonObject Apply(JsonObject current, string contentType, JsonNode patch)
    {
        var mediaType = contentType.Split(';')[0].Trim();
        return mediaType switch
        {
            MergePatch => (JsonObject)Merge(current.DeepClone(), patch, strategic: false)!,
            StrategicMergePatch => (JsonObject)Merge(current.DeepClone(), patch, strategic: true)!,
            JsonPatch => ApplyJsonPatch((JsonObject)current.DeepClone(), patch as JsonArray
                ?? throw new ApiException(HttpStatusCode.BadRequest, "BadRequest", "a JSON patch must be an array of operations")),
            _ => throw new ApiException(HttpStatusCode.UnsupportedMediaType, "UnsupportedMediaType",
                $"the body of the request was in an unknown format - accepted media types include: {JsonPatch}, {MergePatch}, {StrategicMergePatch}"),
        };
    }

    /// <summary>
    /// RFC 7386 merge patch; with <paramref name="strategic"/>, lists of objects keyed by "name"
    /// (containers, ephemeralContainers, env, statuses) or "type" (conditions) merge item by item,
    /// as Kubernetes' strategic merge patch does for those fields.
    /// </summary>
    private static JsonNode? Merge(JsonNode? target, JsonNode? patch, bool strategic)
    {
        if (patch is not JsonObject patchObject)
        {
            if (strategic && target is JsonArray targetArray && patch is JsonArray patchArray && MergeKey(targetArray, patchArray) is { } key)
            {
                var merged = (JsonArray)targetArray.DeepClone();
                foreach (var item in patchArray)
                {
                    var id = (string?)item![key];
                    var existing = merged.FirstOrDefault(m => (string?)m![key] == id);
                    if (existing is null)
                    {
                        merged.Add(item.DeepClone());
                    }
                    else
                    {
                        var index = merged.IndexOf(existing);
                        merged[index] = Merge(existing.DeepClone(), item, strategic);
                    }
                }

                return merged;
            }

            return patch?.DeepClone();
        }

        var result = target as JsonObject ?? [];
        foreach (var (name, value) in patchObject)
        {
            if (value is null)
            {
                result.Remove(name);
            }
            else
            {
                var existing = result[name];
                result.Remove(name);
                result[name] = Merge(existing?.DeepClone(), value, strategic);
            }
        }

        return result;
    }

    private static string? MergeKey(JsonArray target, JsonArray patch)
    {
        var all = target.Concat(patch).ToList();
        if (all.Count == 0 || all.Any(n => n is not JsonObject))
        {
            return null;
        }

        foreach (var key in new[] { "name", "type" })
        {
            if (all.All(n => n![key] is JsonValue))
            {
                return key;
            }
        }

        return null;
    }

    private static JsonObject ApplyJsonPatch(JsonObject document, JsonArray operations)
    {
        JsonNode root = document;
        foreach (var node in operations)
        {
            var op = (string?)node?["op"];
            var path = (string?)node?["path"] ?? throw BadPatch("every operation needs a path");
            switch (op)
            {
                case "add":
                    Add(root, path, node!["value"]?.DeepClone());
                    break;
                case "replace":
                    Remove(root, path);
                    Add(root, path, node!["value"]?.DeepClone());
                    break;
                case "remove":
                    Remove(root, path);
                    break;
                case "test":
                    if (!JsonNode.DeepEquals(Resolve(root, path), node!["value"]))
                    {
                        throw new ApiException(HttpStatusCode.UnprocessableEntity, "Invalid", $"the server rejected our request due to an error in our request: test failed at {path}");
                    }

                    break;
                default:
                    throw BadPatch($"unsupported JSON patch operation '{op}'");
            }
        }

        return (JsonObject)root;
    }

    private static (JsonNode Parent, string Last) Parent(JsonNode root, string path)
    {
        var parts = Pointer(path);
        if (parts.Count == 0)
        {
            throw BadPatch("the root cannot be patched");
        }

        var parent = root;
        foreach (var part in parts.Take(parts.Count - 1))
        {
            parent = Child(parent, part) ?? throw BadPatch($"path {path} does not exist");
        }

        return (parent, parts[^1]);
    }

    private static JsonNode? Resolve(JsonNode root, string path)
    {
        JsonNode? node = root;
        foreach (var part in Pointer(path))
        {
            node = node is null ? null : Child(node, part);
        }

        return node;
    }

    private static JsonNode? Child(JsonNode node, string part) => node switch
    {
        JsonObject o => o[part],
        JsonArray a when int.TryParse(part, out var i) && i >= 0 && i < a.Count => a[i],
        _ => null,
    };

    private static void Add(JsonNode root, string path, JsonNode? value)
    {
        var (parent, last) = Parent(root, path);
        switch (parent)
        {
            case JsonObject o:
                o.Remove(last);
                o[last] = value;
                break;
            case JsonArray a when last == "-":
                a.Add(value);
                break;
            case JsonArray a when int.TryParse(last, out var i) && i >= 0 && i <= a.Count:
                a.Insert(i, value);
                break;
            default:
                throw BadPatch($"cannot add at {path}");
        }
    }

    private static void Remove(JsonNode root, string path)
    {
        var (parent, last) = Parent(root, path);
        switch (parent)
        {
            case JsonObject o when o.ContainsKey(last):
                o.Remove(last);
                break;
            case JsonArray a when int.TryParse(last, out var i) && i >= 0 && i < a.Count:
                a.RemoveAt(i);
                break;
            default:
                throw new ApiException(HttpStatusCode.UnprocessableEntity, "Invalid", $"the server rejected our request due to an error in our request: path {path} does not exist");
        }
    }

    private static List<string> Pointer(string path) =>
        path.Length == 0 ? [] : path.TrimStart('/').Split('/').Select(p => p.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal)).ToList();

    private static ApiException BadPatch(string message) => new(HttpStatusCode.BadRequest, "BadRequest", message);
}
