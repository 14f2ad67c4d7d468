using System.Net;
using System.Text.Json.Nodes;

namespace KubeCapture.Testing.Kubernetes;

/// <summary>labelSelector and fieldSelector query parameters, as the API server reads them.</summary>
public static class Selectors
{
    public static Func<JsonObject, bool> Parse(string? labelSelector, string? fieldSelector)
    {
        var labels = ParseLabels(labelSelector);
        var fields = ParseFields(fieldSelector);
        return o => labels(o["metadata"]?["labels"] as JsonObject) && fields(o);
    }

    private static Func<JsonObject?, bool> ParseLabels(string? selector)
    {
        if (string.IsNullOrWhiteSpace(selector))
        {
            return _ => true;
        }

        var terms = new List<Func<JsonObject?, bool>>();
        foreach (var raw in SplitTerms(selector))
        {
            var term = raw.Trim();
            if (term.Contains(" notin ", StringComparison.Ordinal) || term.Contains(" in ", StringComparison.Ordinal))
            {
                var negate = term.Contains(" notin ", StringComparison.Ordinal);
                var parts = term.Split(negate ? " notin " : " in ", 2);
                var key = parts[0].Trim();
                var values = parts[1].Trim().TrimStart('(').TrimEnd(')').Split(',').Select(v => v.Trim()).ToHashSet(StringComparer.Ordinal);
                terms.Add(l => values.Contains(Label(l, key) ?? "\0") != negate);
            }
            else if (term.Contains("!=", StringComparison.Ordinal))
            {
                var parts = term.Split("!=", 2);
                terms.Add(l => Label(l, parts[0].Trim()) != parts[1].Trim());
            }
            else if (term.Contains('='))
            {
                var parts = term.Split(term.Contains("==", StringComparison.Ordinal) ? "==" : "=", 2);
                terms.Add(l => Label(l, parts[0].Trim()) == parts[1].Trim());
            }
            else if (term.StartsWith('!'))
            {
                terms.Add(l => Label(l, term[1..].Trim()) is null);
            }
            else if (term.Length > 0 && term.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' or '/'))
            {
                terms.Add(l => Label(l, term) is not null);
            }
            else
            {
                throw new ApiException(HttpStatusCode.BadRequest, "BadRequest", $"unable to parse requirement: invalid label selector term \"{term}\"");
            }
        }

        return l => terms.All(t => t(l));
    }

    private static Func<JsonObject, bool> ParseFields(string? selector)
    {
        if (string.IsNullOrWhiteSpace(selector))
        {
            return _ => true;
        }

        var terms = new List<Func<JsonObject, bool>>();
        foreach (var term in selector.Split(','))
        {
            var negate = term.Contains("!=", StringComparison.Ordinal);
            var parts = term.Split(negate ? "!=" : term.Contains("==", StringComparison.Ordinal) ? "==" : "=", 2);
            if (parts.Length != 2)
            {
                throw new ApiException(HttpStatusCode.BadRequest, "BadRequest", $"invalid field selector \"{term}\"");
            }

            var path = parts[0].Trim().Split('.');
            var value = parts[1].Trim();
            terms.Add(o =>
            {
                JsonNode? node = o;
                foreach (var p in path)
                {
                    node = node?[p];
                }

                return ((node as JsonValue)?.ToString() ?? "") == value != negate;
            });
        }

        return o => terms.All(t => t(o));
    }

    private static string? Label(JsonObject? labels, string key) => (string?)labels?[key];

    /// <summary>Splits on commas outside parentheses: "a in (x,y),b=c" is two terms.</summary>
    private static IEnumerable<string> SplitTerms(string selector)
    {
        var depth = 0;
        var start = 0;
        for (var i = 0; i < selector.Length; i++)
        {
            depth += selector[i] switch { '(' => 1, ')' => -1, _ => 0 };
            if (selector[i] == ',' && depth == 0)
            {
                yield return selector[start..i];
                start = i + 1;
            }
        }

        yield return selector[start..];
    }
}
