using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using System.Threading.Channels;

namespace KubeCapture.Testing.Kubernetes;

/// <summary>One change, as a watch reports it: ADDED, MODIFIED, DELETED, BOOKMARK or ERROR.</summary>
public sealed record WatchEvent(long ResourceVersion, string Type, ResourceType Resource, JsonObject Object);

/// <summary>An API error: the HTTP status and the Kubernetes Status reason (NotFound, Conflict, Invalid...).</summary>
public sealed class ApiException(HttpStatusCode code, string reason, string message) : Exception(message)
{
    public HttpStatusCode Code { get; } = code;

    public string Reason { get; } = reason;
}

/// <summary>
/// The emulated etcd + registry: every object as JSON, one resourceVersion counter for all writes,
/// a bounded history of changes for watches (older versions answer 410 Gone), and the write
/// semantics of the real API server (optimistic concurrency, generation, finalizers, subresources).
/// </summary>
public sealed class ObjectStore
{
    private readonly Lock gate = new();
    private readonly Dictionary<(ResourceType Type, string Namespace, string Name), JsonObject> objects = [];
    private readonly LinkedList<WatchEvent> history = new();
    private readonly List<Subscription> subscriptions = [];
    private long resourceVersion = 100;
    private long compactedThrough = 100;

    /// <summary>How many changes the store remembers for watches; older resourceVersions are "too old" (410).</summary>
    public int HistoryLimit { get; set; } = 100_000;

    /// <summary>Raised after every write, outside the store's lock (the test kubelet listens here).</summary>
    public event Action<WatchEvent>? Changed;

    public long CurrentResourceVersion
    {
        get
        {
            lock (gate)
            {
                return resourceVersion;
            }
        }
    }

    /// <summary>Forgets all history: every watch resumed from an existing resourceVersion gets 410 Gone.</summary>
    public void Compact()
    {
        lock (gate)
        {
            history.Clear();
            compactedThrough = resourceVersion;
        }
    }

    public JsonObject? Get(ResourceType type, string ns, string name)
    {
        lock (gate)
        {
            return objects.TryGetValue((type, Scope(type, ns), name), out var found) ? (JsonObject)found.DeepClone() : null;
        }
    }

    public (IReadOnlyList<JsonObject> Items, long ResourceVersion) List(ResourceType type, string? ns, Func<JsonObject, bool> match)
    {
        lock (gate)
        {
            var items = objects
                .Where(o => o.Key.Type == type && (ns is null || o.Key.Namespace == ns) && match(o.Value))
                .OrderBy(o => o.Key.Namespace, StringComparer.Ordinal).ThenBy(o => o.Key.Name, StringComparer.Ordinal)
                .Select(o => (JsonObject)o.Value.DeepClone())
                .ToList();
            return (items, resourceVersion);
        }
    }

    public JsonObject Create(ResourceType type, string ns, JsonObject body)
    {
        WatchEvent change;
        lock (gate)
        {
            var metadata = body["metadata"] as JsonObject ?? throw Invalid(type, "?", "metadata is required");
            var name = (string?)metadata["name"];
            if (string.IsNullOrEmpty(name))
            {
                var generateName = (string?)metadata["generateName"];
                name = string.IsNullOrEmpty(generateName)
                    ? throw Invalid(type, "?", "metadata.name: Required value: name or generateName is required")
                    : generateName + Guid.NewGuid().ToString("N")[..5];
            }

            var key = (type, Scope(type, ns), name);
            if (objects.ContainsKey(key))
            {
                throw new ApiException(HttpStatusCode.Conflict, "AlreadyExists", $"{type.Plural}.{type.Group} \"{name}\" already exists".Replace(".\"", " \"", StringComparison.Ordinal));
            }

            if (type.Namespaced && type != ResourceType.Namespaces && !objects.ContainsKey((ResourceType.Namespaces, "", ns)) && type != ResourceType.Events)
            {
                throw new ApiException(HttpStatusCode.NotFound, "NotFound", $"namespaces \"{ns}\" not found");
            }

            var stored = (JsonObject)body.DeepClone();
            if (type.HasStatusSubresource && type != ResourceType.Pods)
            {
                stored.Remove("status");
            }

            if (type == ResourceType.Secrets && stored["stringData"] is JsonObject stringData)
            {
                // As the API server does: stringData is written into data (base64) and never stored itself.
                var data = stored["data"] as JsonObject ?? [];
                foreach (var (field, value) in stringData)
                {
                    data[field] = Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes((string?)value ?? ""));
                }

                stored["data"] = data;
                stored.Remove("stringData");
            }

            stored["apiVersion"] = type.ApiVersion;
            stored["kind"] = type.Kind;
            var meta = (JsonObject)stored["metadata"]!;
            meta["name"] = name;
            if (type.Namespaced)
            {
                meta["namespace"] = ns;
            }

            meta["uid"] = Guid.NewGuid().ToString();
            meta["creationTimestamp"] = Timestamp(DateTimeOffset.UtcNow);
            meta.Remove("deletionTimestamp");
            if (type.TracksGeneration)
            {
                meta["generation"] = 1L;
            }

            change = Write(type, key, stored, "ADDED");
        }

        Changed?.Invoke(change);
        return (JsonObject)change.Object.DeepClone();
    }

    /// <summary>
    /// PUT semantics. <paramref name="subresource"/> is null (main resource: status is kept), "status"
    /// (only status changes) or "ephemeralcontainers" (only spec.ephemeralContainers, and existing ones never change).
    /// </summary>
    public JsonObject Update(ResourceType type, string ns, string name, JsonObject body, string? subresource)
    {
        WatchEvent change;
        lock (gate)
        {
            var key = (type, Scope(type, ns), name);
            if (!objects.TryGetValue(key, out var current))
            {
                throw NotFound(type, name);
            }

            var expected = (string?)body["metadata"]?["resourceVersion"];
            var currentVersion = (string?)current["metadata"]!["resourceVersion"];
            if (!string.IsNullOrEmpty(expected) && expected != currentVersion)
            {
                throw new ApiException(HttpStatusCode.Conflict, "Conflict",
                    $"Operation cannot be fulfilled on {Qualified(type)} \"{name}\": the object has been modified; please apply your changes to the latest version and try again");
            }

            var bodyName = (string?)body["metadata"]?["name"];
            if (bodyName is not null && bodyName != name)
            {
                throw Invalid(type, name, $"metadata.name: Invalid value: \"{bodyName}\": field is immutable");
            }

            var next = subresource switch
            {
                null => MainUpdate(type, current, body),
                "status" when type.HasStatusSubresource => StatusUpdate(current, body),
                "ephemeralcontainers" when type == ResourceType.Pods => EphemeralContainersUpdate(type, name, current, body),
                _ => throw new ApiException(HttpStatusCode.NotFound, "NotFound", $"the server could not find the requested resource ({subresource})"),
            };

            var nextMeta = (JsonObject)next["metadata"]!;
            if (nextMeta["deletionTimestamp"] is not null && (nextMeta["finalizers"] is not JsonArray finalizers || finalizers.Count == 0))
            {
                objects.Remove(key);
                change = Record(type, next, "DELETED");
            }
            else
            {
                change = Write(type, key, next, "MODIFIED");
            }
        }

        Changed?.Invoke(change);
        return (JsonObject)change.Object.DeepClone();
    }

    /// <summary>DELETE: with finalizers the object only gets a deletionTimestamp; without, it is gone.</summary>
    public JsonObject Delete(ResourceType type, string ns, string name)
    {
        WatchEvent change;
        lock (gate)
        {
            var key = (type, Scope(type, ns), name);
            if (!objects.TryGetValue(key, out var current))
            {
                throw NotFound(type, name);
            }

            var next = (JsonObject)current.DeepClone();
            var meta = (JsonObject)next["metadata"]!;
            if (meta["finalizers"] is JsonArray { Count: > 0 })
            {
                if (meta["deletionTimestamp"] is not null)
                {
                    return next;
                }

                meta["deletionTimestamp"] = Timestamp(DateTimeOffset.UtcNow);
                meta["deletionGracePeriodSeconds"] = 0;
                change = Write(type, key, next, "MODIFIED");
            }
            else
            {
                objects.Remove(key);
                change = Record(type, next, "DELETED");
            }
        }

        Changed?.Invoke(change);
        return (JsonObject)change.Object.DeepClone();
    }

    /// <summary>
    /// Starts a watch. With no resourceVersion (or "0") the current objects come first as ADDED; with
    /// one, every change after it is replayed, or an ERROR 410 when history no longer reaches back.
    /// </summary>
    public Subscription Watch(ResourceType type, string? ns, string? fromVersion, bool bookmarks, Func<JsonObject, bool> match)
    {
        lock (gate)
        {
            var subscription = new Subscription(type, ns, bookmarks, match);
            if (string.IsNullOrEmpty(fromVersion) || fromVersion == "0")
            {
                foreach (var o in objects.Where(o => o.Key.Type == type && (ns is null || o.Key.Namespace == ns) && match(o.Value)))
                {
                    subscription.Offer(new WatchEvent(long.Parse((string)o.Value["metadata"]!["resourceVersion"]!, CultureInfo.InvariantCulture), "ADDED", type, (JsonObject)o.Value.DeepClone()));
                }
            }
            else
            {
                if (!long.TryParse(fromVersion, NumberStyles.None, CultureInfo.InvariantCulture, out var from))
                {
                    throw Invalid(type, "", $"resourceVersion: Invalid value: \"{fromVersion}\"");
                }

                if (from < compactedThrough)
                {
                    subscription.Offer(TooOld(type, from));
                    subscription.Complete();
                    return subscription;
                }

                foreach (var e in history.Where(e => e.ResourceVersion > from))
                {
                    subscription.Offer(e);
                }
            }

            subscriptions.Add(subscription);
            return subscription;
        }
    }

    /// <summary>Sends a BOOKMARK carrying the current resourceVersion to every watch that asked for bookmarks.</summary>
    public void SendBookmarks()
    {
        lock (gate)
        {
            foreach (var s in subscriptions.Where(s => s.Bookmarks))
            {
                var bookmark = new JsonObject
                {
                    ["kind"] = s.Type.Kind,
                    ["apiVersion"] = s.Type.ApiVersion,
                    ["metadata"] = new JsonObject { ["resourceVersion"] = resourceVersion.ToString(CultureInfo.InvariantCulture) },
                };
                s.Offer(new WatchEvent(resourceVersion, "BOOKMARK", s.Type, bookmark));
            }
        }
    }

    /// <summary>Ends every open watch stream, as a restarting API server or a broken connection would.</summary>
    public int DropWatches()
    {
        lock (gate)
        {
            var count = subscriptions.Count;
            foreach (var s in subscriptions)
            {
                s.Complete();
            }

            subscriptions.Clear();
            return count;
        }
    }

    public int OpenWatches(ResourceType type)
    {
        lock (gate)
        {
            return subscriptions.Count(s => s.Type == type);
        }
    }

    internal void Unsubscribe(Subscription subscription)
    {
        lock (gate)
        {
            subscriptions.Remove(subscription);
        }
    }

    private static JsonObject MainUpdate(ResourceType type, JsonObject current, JsonObject body)
    {
        var next = (JsonObject)body.DeepClone();
        next["apiVersion"] = type.ApiVersion;
        next["kind"] = type.Kind;
        var meta = next["metadata"] as JsonObject ?? [];
        next["metadata"] = meta;
        var currentMeta = (JsonObject)current["metadata"]!;
        foreach (var systemField in new[] { "name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation" })
        {
            meta.Remove(systemField);
            if (currentMeta[systemField] is { } value)
            {
                meta[systemField] = value.DeepClone();
            }
        }

        if (type.HasStatusSubresource)
        {
            next.Remove("status");
            if (current["status"] is { } status)
            {
                next["status"] = status.DeepClone();
            }
        }

        if (type == ResourceType.Pods)
        {
            // Ephemeral containers change only through their subresource.
            var spec = next["spec"] as JsonObject ?? [];
            next["spec"] = spec;
            spec.Remove("ephemeralContainers");
            if (current["spec"]?["ephemeralContainers"] is { } ephemeral)
            {
                spec["ephemeralContainers"] = ephemeral.DeepClone();
            }
        }

        if (type.TracksGeneration && !JsonNode.DeepEquals(current["spec"], next["spec"]))
        {
            meta["generation"] = (currentMeta["generation"] is { } g ? long.Parse(g.ToJsonString(), CultureInfo.InvariantCulture) : 1L) + 1;
        }

        return next;
    }

    private static JsonObject StatusUpdate(JsonObject current, JsonObject body)
    {
        var next = (JsonObject)current.DeepClone();
        next.Remove("status");
        if (body["status"] is { } status)
        {
            next["status"] = status.DeepClone();
        }

        return next;
    }

    private static JsonObject EphemeralContainersUpdate(ResourceType type, string name, JsonObject current, JsonObject body)
    {
        var existing = current["spec"]?["ephemeralContainers"] as JsonArray ?? [];
        var proposed = body["spec"]?["ephemeralContainers"] as JsonArray ?? [];
        var proposedByName = new Dictionary<string, JsonObject>(StringComparer.Ordinal);
        foreach (var node in proposed)
        {
            if (node is not JsonObject container || string.IsNullOrEmpty((string?)container["name"]))
            {
                throw Invalid(type, name, "spec.ephemeralContainers[].name: Required value");
            }

            if (!proposedByName.TryAdd((string)container["name"]!, container))
            {
                throw Invalid(type, name, $"spec.ephemeralContainers[].name: Duplicate value: \"{(string?)container["name"]}\"");
            }
        }

        foreach (var node in existing)
        {
            var old = (JsonObject)node!;
            var oldName = (string)old["name"]!;
            if (!proposedByName.TryGetValue(oldName, out var now))
            {
                throw Invalid(type, name, $"spec.ephemeralContainers: Forbidden: existing ephemeral containers \"{oldName}\" may not be removed");
            }

            if (!JsonNode.DeepEquals(old, now))
            {
                throw Invalid(type, name, $"spec.ephemeralContainers[{oldName}]: Forbidden: existing ephemeral containers \"{oldName}\" may not be changed");
            }
        }

        var containerNames = (current["spec"]?["containers"] as JsonArray ?? []).Concat(current["spec"]?["initContainers"] as JsonArray ?? [])
            .Select(c => (string?)c?["name"]).ToHashSet(StringComparer.Ordinal);
        foreach (var (newName, container) in proposedByName)
        {
            if (existing.Any(e => (string?)e?["name"] == newName))
            {
                continue;
            }

            if (containerNames.Contains(newName))
            {
                throw Invalid(type, name, $"spec.ephemeralContainers[0].name: Duplicate value: \"{newName}\"");
            }

            if (string.IsNullOrEmpty((string?)container["image"]))
            {
                throw Invalid(type, name, $"spec.ephemeralContainers[{newName}].image: Required value");
            }

            foreach (var forbidden in new[] { "ports", "livenessProbe", "readinessProbe", "startupProbe", "lifecycle", "resources" })
            {
                if (container[forbidden] is not null)
                {
                    throw Invalid(type, name, $"spec.ephemeralContainers[{newName}].{forbidden}: Forbidden: cannot be set for an Ephemeral Container");
                }
            }
        }

        var next = (JsonObject)current.DeepClone();
        var spec = next["spec"] as JsonObject ?? [];
        next["spec"] = spec;
        spec["ephemeralContainers"] = proposed.DeepClone();
        return next;
    }

    private WatchEvent Write(ResourceType type, (ResourceType, string, string) key, JsonObject next, string eventType)
    {
        objects[key] = next;
        return Record(type, next, eventType);
    }

    private WatchEvent Record(ResourceType type, JsonObject next, string eventType)
    {
        resourceVersion++;
        next["metadata"]!["resourceVersion"] = resourceVersion.ToString(CultureInfo.InvariantCulture);
        var change = new WatchEvent(resourceVersion, eventType, type, (JsonObject)next.DeepClone());
        history.AddLast(change);
        while (history.Count > HistoryLimit)
        {
            compactedThrough = history.First!.Value.ResourceVersion;
            history.RemoveFirst();
        }

        var ns = (string?)next["metadata"]!["namespace"] ?? "";
        foreach (var s in subscriptions)
        {
            if (s.Type == type && (s.Namespace is null || s.Namespace == ns) && s.Match(change.Object))
            {
                s.Offer(change);
            }
        }

        return change;
    }

    private static WatchEvent TooOld(ResourceType type, long from) => new(0, "ERROR", type, new JsonObject
    {
        ["kind"] = "Status",
        ["apiVersion"] = "v1",
        ["metadata"] = new JsonObject(),
        ["status"] = "Failure",
        ["message"] = $"too old resource version: {from}",
        ["reason"] = "Expired",
        ["code"] = 410,
    });

    private static string Scope(ResourceType type, string ns) => type.Namespaced ? ns : "";

    private static string Qualified(ResourceType type) => type.Group.Length == 0 ? type.Plural : $"{type.Plural}.{type.Group}";

    internal static ApiException NotFound(ResourceType type, string name) =>
        new(HttpStatusCode.NotFound, "NotFound", $"{Qualified(type)} \"{name}\" not found");

    internal static ApiException Invalid(ResourceType type, string name, string detail) =>
        new(HttpStatusCode.UnprocessableEntity, "Invalid", $"{type.Kind} \"{name}\" is invalid: {detail}");

    public static string Timestamp(DateTimeOffset time) =>
        time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>One open watch: changes queue here in resourceVersion order until the HTTP stream writes them.</summary>
    public sealed class Subscription(ResourceType type, string? ns, bool bookmarks, Func<JsonObject, bool> match)
    {
        private readonly Channel<WatchEvent> events = Channel.CreateUnbounded<WatchEvent>(new UnboundedChannelOptions { SingleReader = true });

        public ResourceType Type { get; } = type;

        public string? Namespace { get; } = ns;

        public bool Bookmarks { get; } = bookmarks;

        public Func<JsonObject, bool> Match { get; } = match;

        public ChannelReader<WatchEvent> Events => events.Reader;

        internal void Offer(WatchEvent e) => events.Writer.TryWrite(e);

        internal void Complete() => events.Writer.TryComplete();
    }
}
