using System.Text.Json;
using k8s.Models;
using KubeCapture.Operator.Custody;

namespace KubeCapture.Operator.Admission;

/// <summary>
/// Who asked for a capture, as kube-apiserver authenticated them: three annotations the admission
/// webhook writes when a PacketCapture is created and that nobody may set or change afterwards.
/// <c>kubecapture.io/requested-by</c> (username), <c>kubecapture.io/requested-by-uid</c> and
/// <c>kubecapture.io/requested-by-groups</c> (a JSON array of strings).
/// </summary>
public static class RequesterStamp
{
    public const string Prefix = "kubecapture.io/requested-by";
    public const string Username = Prefix;
    public const string Uid = Prefix + "-uid";
    public const string Groups = Prefix + "-groups";

    /// <summary>The stamp's annotations, in the order they are written.</summary>
    public static readonly IReadOnlyList<string> Keys = [Username, Uid, Groups];

    /// <summary>True for any annotation in the stamp's name space (kubecapture.io/requested-by*), a known key or not.</summary>
    public static bool IsStampKey(string key) => key.StartsWith(Prefix, StringComparison.Ordinal);

    /// <summary>The annotations that record <paramref name="requester"/>.</summary>
    public static IReadOnlyDictionary<string, string> Annotations(CaptureRequester requester) => new Dictionary<string, string>(StringComparer.Ordinal)
    {
        [Username] = requester.Username,
        [Uid] = requester.Uid ?? "",
        [Groups] = JsonSerializer.Serialize(requester.Groups),
    };

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

        problem = "";
        return new CaptureRequester { Username = name, Uid = uid.Length == 0 ? null : uid, Groups = groups };
    }
}
