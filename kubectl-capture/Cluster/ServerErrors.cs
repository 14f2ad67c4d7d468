using System.Text.Json;
using k8s.Autorest;

namespace KubeCapture.KubectlPlugin.Cluster;

/// <summary>A refusal of kube-apiserver (or of the extension API behind it) in kubectl's words: <c>Error from server (Forbidden): ...</c>.</summary>
public static class ServerErrors
{
    public static string Describe(HttpOperationException e) =>
        Describe((int)e.Response.StatusCode, e.Response.Content);

    public static string Describe(int statusCode, string? body)
    {
        try
        {
            using var status = JsonDocument.Parse(body ?? "");
            var root = status.RootElement;
            if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("kind", out var kind) && kind.GetString() == "Status")
            {
                var reason = root.TryGetProperty("reason", out var r) && r.GetString() is { Length: > 0 } text ? text : ReasonOf(statusCode);
                var message = root.TryGetProperty("message", out var m) ? m.GetString() : null;
                return $"Error from server ({reason}): {message ?? $"HTTP {statusCode}"}";
            }
        }
        catch (JsonException)
        {
            // not a Status: said below as it came
        }

        var shown = (body ?? "").Trim();
        return $"Error from server ({ReasonOf(statusCode)}): {(shown.Length == 0 ? $"HTTP {statusCode}" : shown[..Math.Min(shown.Length, 500)])}";
    }

    private static string ReasonOf(int statusCode) => statusCode switch
    {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        410 => "Gone",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        _ => $"HTTP {statusCode}",
    };
}
