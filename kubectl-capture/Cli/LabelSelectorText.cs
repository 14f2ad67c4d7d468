using System.Text.RegularExpressions;
using k8s.Models;
using KubeCapture.Contracts.Arguments;

namespace KubeCapture.KubectlPlugin.Cli;

/// <summary>
/// kubectl's <c>-l</c> selector text into a <see cref="V1LabelSelector"/>: <c>k=v</c> and <c>k==v</c>
/// (matchLabels), <c>k!=v</c>, <c>k in (a,b)</c>, <c>k notin (a,b)</c>, <c>k</c>, <c>!k</c>
/// (matchExpressions), joined by commas.
/// </summary>
public static partial class LabelSelectorText
{
    public static V1LabelSelector Parse(string text)
    {
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        var expressions = new List<V1LabelSelectorRequirement>();
        foreach (var term in Terms(text))
        {
            var set = SetTerm().Match(term);
            var equality = EqualityTerm().Match(term);
            if (set.Success)
            {
                var values = set.Groups["values"].Value.Split(',', StringSplitOptions.TrimEntries);
                foreach (var value in values)
                {
                    Value(value, term);
                }

                expressions.Add(new V1LabelSelectorRequirement
                {
                    Key = Key(set.Groups["key"].Value, term),
                    OperatorProperty = set.Groups["op"].Value == "in" ? "In" : "NotIn",
                    Values = values,
                });
            }
            else if (equality.Success)
            {
                var key = Key(equality.Groups["key"].Value, term);
                var value = Value(equality.Groups["value"].Value.Trim(), term);
                if (equality.Groups["op"].Value == "!=")
                {
                    expressions.Add(new V1LabelSelectorRequirement { Key = key, OperatorProperty = "NotIn", Values = [value] });
                }
                else if (!labels.TryAdd(key, value) && labels[key] != value)
                {
                    throw new UsageException($"selector '{text}' asks for {key}={labels[key]} and {key}={value}: no pod matches both");
                }
            }
            else if (term.StartsWith('!'))
            {
                expressions.Add(new V1LabelSelectorRequirement { Key = Key(term[1..].Trim(), term), OperatorProperty = "DoesNotExist" });
            }
            else
            {
                expressions.Add(new V1LabelSelectorRequirement { Key = Key(term, term), OperatorProperty = "Exists" });
            }
        }

        return new V1LabelSelector
        {
            MatchLabels = labels.Count > 0 ? labels : null,
            MatchExpressions = expressions.Count > 0 ? expressions : null,
        };
    }

    private static List<string> Terms(string text)
    {
        var terms = new List<string>();
        var depth = 0;
        var start = 0;
        for (var i = 0; i <= text.Length; i++)
        {
            if (i == text.Length || (text[i] == ',' && depth == 0))
            {
                var term = text[start..i].Trim();
                if (term.Length == 0)
                {
                    throw new UsageException($"invalid selector '{text}': an empty term (use app=web or app=web,tier in (api,db))");
                }

                terms.Add(term);
                start = i + 1;
            }
            else if (text[i] == '(')
            {
                depth++;
            }
            else if (text[i] == ')')
            {
                depth--;
            }
        }

        return depth == 0 ? terms : throw new UsageException($"invalid selector '{text}': unbalanced parentheses");
    }

    private static string Key(string key, string term) => LabelKey().IsMatch(key)
        ? key
        : throw new UsageException($"invalid selector term '{term}': '{key}' is not a label key");

    private static string Value(string value, string term) => LabelValue().IsMatch(value)
        ? value
        : throw new UsageException($"invalid selector term '{term}': '{value}' is not a label value");

    [GeneratedRegex(@"^(?<key>[^\s!=()]+)\s+(?<op>in|notin)\s*\((?<values>[^()]*)\)$")]
    private static partial Regex SetTerm();

    [GeneratedRegex(@"^(?<key>[^\s!=()]+)\s*(?<op>==|=|!=)(?<value>[^=()]*)$")]
    private static partial Regex EqualityTerm();

    [GeneratedRegex(@"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")]
    private static partial Regex LabelKey();

    [GeneratedRegex(@"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")]
    private static partial Regex LabelValue();
}
