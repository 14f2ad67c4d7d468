using System.Globalization;
using System.Text.Json;

namespace KubeCapture.Testing.Kubernetes;

/// <summary>One request as the kube-apiserver's audit log records it (stage ResponseComplete, or ResponseStarted for a watch).</summary>
public sealed record AuditedRequest(
    DateTimeOffset Received,
    string User,
    string Verb,
    string? Resource,
    string? Subresource,
    string? Namespace,
    string? Name,
    int? Code,
    string Stage,
    string Uri,
    string UserAgent)
{
    /// <summary>"verb resource[/subresource]", e.g. "patch pods/ephemeralcontainers".</summary>
    public string What => $"{Verb} {Resource}{(Subresource is null ? "" : "/" + Subresource)}";

    public bool IsRead => Verb is "get" or "list";

    /// <summary>Sent by kubectl (its user agent), e.g. a test asking <c>kubectl auth can-i</c> with a ServiceAccount's token.</summary>
    public bool ByKubectl => UserAgent.StartsWith("kubectl/", StringComparison.Ordinal);
}

/// <summary>
/// Reads the audit log of a <see cref="KubeApiServer"/> (JSON lines, level Metadata): every request
/// the server answered, by whom, for counting what a client costs the control plane. Take a
/// <see cref="Mark"/> before the part to count, then <see cref="Since"/> it.
/// </summary>
public sealed class AuditLog(string path)
{
    /// <summary>Where the log ends now.</summary>
    public long Mark() => File.Exists(path) ? new FileInfo(path).Length : 0;

    /// <summary>
    /// The requests logged after <paramref name="mark"/> by <paramref name="user"/> (any user when null):
    /// completed requests, and each watch once (when it started).
    /// </summary>
    public IReadOnlyList<AuditedRequest> Since(long mark, string? user = null)
    {
        var found = new List<AuditedRequest>();
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        stream.Seek(mark, SeekOrigin.Begin);
        using var reader = new StreamReader(stream);
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0 || line[^1] != '}')
            {
                continue; // a line still being written
            }

            using var doc = JsonDocument.Parse(line);
            var root = doc.RootElement;
            var verb = root.GetProperty("verb").GetString() ?? "";
            var stage = root.GetProperty("stage").GetString() ?? "";
            if (!(stage == "ResponseComplete" && verb != "watch") && !(stage == "ResponseStarted" && verb == "watch"))
            {
                continue;
            }

            var who = root.GetProperty("user").GetProperty("username").GetString() ?? "";
            if (user is not null && who != user)
            {
                continue;
            }

            var objectRef = root.TryGetProperty("objectRef", out var o) ? o : default;
            found.Add(new AuditedRequest(
                DateTimeOffset.Parse(root.GetProperty("requestReceivedTimestamp").GetString()!, CultureInfo.InvariantCulture),
                who,
                verb,
                Field(objectRef, "resource"),
                Field(objectRef, "subresource"),
                Field(objectRef, "namespace"),
                Field(objectRef, "name"),
                root.TryGetProperty("responseStatus", out var status) && status.TryGetProperty("code", out var code) ? code.GetInt32() : null,
                stage,
                root.GetProperty("requestURI").GetString() ?? "",
                root.TryGetProperty("userAgent", out var agent) ? agent.GetString() ?? "" : ""));
        }

        return found;
    }

    private static string? Field(JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value) ? value.GetString() : null;
}
