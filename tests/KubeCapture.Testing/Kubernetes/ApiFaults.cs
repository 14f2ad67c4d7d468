using System.Net;

namespace KubeCapture.Testing.Kubernetes;

/// <summary>
/// What can go wrong between a client and the API server, on demand: failed requests, slow
/// responses, watches cut in the middle, history compacted so that old resourceVersions are gone.
/// </summary>
public sealed class ApiFaults
{
    private readonly Lock gate = new();
    private readonly List<FailureRule> failures = [];
    private readonly List<FailureRule> lostAnswers = [];

    /// <summary>Added before every response (watch streams included, before their first byte).</summary>
    public TimeSpan Latency { get; set; }

    /// <summary>
    /// The next <paramref name="count"/> requests whose method and path match fail with <paramref name="status"/>,
    /// with a Retry-After header of <paramref name="retryAfter"/> (whole seconds) when given, as API
    /// Priority and Fairness answers a throttled client (429).
    /// </summary>
    public void FailNext(int count, HttpStatusCode status = HttpStatusCode.InternalServerError, string? method = null, string? pathContains = null, TimeSpan? retryAfter = null)
    {
        lock (gate)
        {
            failures.Add(new FailureRule(count, status, method, pathContains, retryAfter));
        }
    }

    /// <summary>
    /// The next <paramref name="count"/> matching requests are carried out, but the client gets a
    /// 504 instead of the answer: a timeout after the write (the client cannot tell whether it happened).
    /// </summary>
    public void LoseAnswerNext(int count, string? method = null, string? pathContains = null)
    {
        lock (gate)
        {
            lostAnswers.Add(new FailureRule(count, HttpStatusCode.GatewayTimeout, method, pathContains, null));
        }
    }

    /// <summary>Whether the answer to this request, carried out, is to be lost (a lost-answer rule is due).</summary>
    public bool TakeLostAnswer(string method, string path)
    {
        lock (gate)
        {
            return Take(lostAnswers, method, path) is not null;
        }
    }

    public HttpStatusCode? TakeFailure(string method, string path) => TakeFault(method, path)?.Status;

    /// <summary>The injected failure for this request, if one is due: its status and Retry-After.</summary>
    public (HttpStatusCode Status, TimeSpan? RetryAfter)? TakeFault(string method, string path)
    {
        lock (gate)
        {
            return Take(failures, method, path) is { } rule ? (rule.Status, rule.RetryAfter) : null;
        }
    }

    private static FailureRule? Take(List<FailureRule> rules, string method, string path)
    {
        foreach (var rule in rules)
        {
            if (rule.Remaining > 0 &&
                (rule.Method is null || string.Equals(rule.Method, method, StringComparison.OrdinalIgnoreCase)) &&
                (rule.PathContains is null || path.Contains(rule.PathContains, StringComparison.Ordinal)))
            {
                rule.Remaining--;
                return rule;
            }
        }

        return null;
    }

    private sealed class FailureRule(int remaining, HttpStatusCode status, string? method, string? pathContains, TimeSpan? retryAfter)
    {
        public TimeSpan? RetryAfter { get; } = retryAfter;

        public int Remaining { get; set; } = remaining;

        public HttpStatusCode Status { get; } = status;

        public string? Method { get; } = method;

        public string? PathContains { get; } = pathContains;
    }
}
