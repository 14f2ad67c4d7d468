using System.Text.Json;
using k8s.Models;

namespace KubeCapture.Operator.Provenance;

/// <summary>
/// Who asked for a capture, as kube-apiserver authenticated them: annotations the admission webhook
/// writes when a PacketCapture is created and that nobody may set or change afterwards.
/// <c>kubecapture.io/requested-by</c> (username), <c>kubecapture.io/requested-by-uid</c>,
/// <c>kubecapture.io/requested-by-groups</c> (a JSON array of strings), and, only when the
/// authenticator gave any, <c>kubecapture.io/requested-by-extra</c> (userInfo.extra: a JSON object
/// of arrays of strings, keys in ordinal order).
/// </summary>
public static class RequesterStamp
{
    public const string Prefix = "kubecapture.io/requested-by";
    public const string Username = Prefix;
    public const string Uid = Prefix + "-uid";
    public const string Groups = Prefix + "-groups";
    public const string Extra = Prefix + "-extra";

    /// <summary>The annotations every stamp has, in the order they are written (<see cref="Extra"/> follows when there is any).</summary>
    public static readonly IReadOnlyList<string> Keys = [Username, Uid, Groups];

    /// <summary>True for any annotation in the stamp's name space (kubecapture.io/requested-by*), a known key or not.</summary>
    public static bool IsStampKey(string key) => key.StartsWith(Prefix, StringComparison.Ordinal);

    /// <summary>True for the annotations a stamp may have: <see cref="Keys"/> and <see cref="Extra"/>.</summary>
    public static bool IsKnownKey(string key) => key == Extra || Keys.Contains(key);

    /// <summary>The annotations that record <paramref name="requester"/>, in the order they are written.</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> Annotations(CaptureRequester requester)
    {
        List<KeyValuePair<string, string>> stamp =
        [
            new(Username, requester.Username),
            new(Uid, requester.Uid ?? ""),
            new(Groups, JsonSerializer.Serialize(requester.Groups)),
        ];
        if (requester.Extra is { Count: > 0 } extra)
        {
            stamp.Add(new(Extra, JsonSerializer.Serialize(extra))); // keys in ordinal order: NormalizeExtra built it from the request
        }

        return stamp;
    }

    /// <summary>
    /// userInfo.extra as the stamp keeps it: keys in ordinal order, each with its values in the order
    /// given; null when there is none.
    /// </summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<string>>? NormalizeExtra(IEnumerable<KeyValuePair<string, IReadOnlyList<string>>>? extra)
    {
        var sorted = new SortedDictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        foreach (var (key, values) in extra ?? [])
        {
            sorted[key] = values;
        }

        return sorted.Count == 0 ? null : sorted;
    }

    /// <summary>The stamped requester, or null when the capture carries no (complete, well-formed) stamp.</summary>
    public static CaptureRequester? Read(V1ObjectMeta? metadata) => Read(metadata?.Annotations, out _);

    /// <summary>The stamped requester from <paramref name="annotations"/>, or null and what is wrong with the stamp.</summary>
    public static CaptureRequester? Read(IDictionary<string, string>? annotations, out string problem)
    {
        if (annotations is null || !annotations.TryGetValue(Username, out var name) || name.Length == 0)
        {
            problem = $"it has no {Username} annotation";
            return null;
        }

        if (!annotations.TryGetValue(Uid, out var uid) || !annotations.TryGetValue(Groups, out var groupsJson))
        {
            problem = $"its stamp is incomplete (it needs {string.Join(", ", Keys)})";
            return null;
        }

        List<string>? groups;
        try
        {
            groups = JsonSerializer.Deserialize<List<string>>(groupsJson);
        }
        catch (JsonException)
        {
            groups = null;
        }

        if (groups is null || groups.Any(g => g is null))
        {
            problem = $"its {Groups} annotation is not a JSON array of strings: {groupsJson}";
            return null;
        }

        IReadOnlyDictionary<string, IReadOnlyList<string>>? extra = null;
        if (annotations.TryGetValue(Extra, out var extraJson))
        {
            Dictionary<string, List<string>>? parsed;
            try
            {
                parsed = JsonSerializer.Deserialize<Dictionary<string, List<string>>>(extraJson);
            }
            catch (JsonException)
            {
                parsed = null;
            }

            if (parsed is null || parsed.Count == 0 || parsed.Values.Any(v => v is null || v.Any(s => s is null)))
            {
                problem = $"its {Extra} annotation is not a non-empty JSON object of arrays of strings: {extraJson}";
                return null;
            }

            extra = NormalizeExtra(parsed.Select(e => KeyValuePair.Create(e.Key, (IReadOnlyList<string>)e.Value)));
        }

        problem = "";
        return new CaptureRequester { Username = name, Uid = uid.Length == 0 ? null : uid, Groups = groups, Extra = extra };
    }
}
