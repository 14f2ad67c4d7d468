using System.Globalization;
using System.Net;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace KubeCapture.Operator.Queue;

/// <summary>
/// How long the API server asked the operator to wait before trying again: the Retry-After header
/// of a 429 (API Priority and Fairness throttling) or a 5xx, in seconds or as a date, else the
/// Status body's details.retryAfterSeconds. Null when it did not say.
/// </summary>
public static class ServerPushback
{
    /// <summary>Longest wait honoured from a server's answer (a bogus header must not park a capture for hours).</summary>
    public static readonly TimeSpan MaxRetryAfter = TimeSpan.FromMinutes(5);

    public static TimeSpan? RetryAfter(Exception e, DateTimeOffset? now = null)
    {
        if (e is not HttpOperationException { Response: { } response } || !IsPushback(response.StatusCode))
        {
            return null;
        }

        if (response.Headers is { } headers && headers.TryGetValue("Retry-After", out var values) && values.FirstOrDefault() is { } value)
        {
            if (int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds))
            {
                return Clamp(TimeSpan.FromSeconds(seconds));
            }

            if (DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at))
            {
                return Clamp(at - (now ?? DateTimeOffset.UtcNow));
            }
        }

        try
        {
            return KubernetesJson.Deserialize<V1Status>(response.Content)?.Details?.RetryAfterSeconds is int fromBody and > 0 ? Clamp(TimeSpan.FromSeconds(fromBody)) : null;
        }
        catch (Exception parse) when (parse is System.Text.Json.JsonException or ArgumentNullException)
        {
            return null;
        }
    }

    /// <summary>Answers that mean "the request may succeed later": throttled, or the server failed.</summary>
    public static bool IsPushback(HttpStatusCode status) => status == HttpStatusCode.TooManyRequests || (int)status >= 500;

    private static TimeSpan Clamp(TimeSpan wait) => wait < TimeSpan.Zero ? TimeSpan.Zero : wait > MaxRetryAfter ? MaxRetryAfter : wait;
}
