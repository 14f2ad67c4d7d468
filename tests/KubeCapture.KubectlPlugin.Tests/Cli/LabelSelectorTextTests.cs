using KubeCapture.Contracts.Arguments;
using KubeCapture.KubectlPlugin.Cli;

namespace KubeCapture.KubectlPlugin.Tests.Cli;

/// <summary>kubectl's -l syntax into a label selector.</summary>
public sealed class LabelSelectorTextTests
{
    [Fact]
    public void Equality_terms_are_matchLabels_and_the_others_matchExpressions()
    {
        var selector = LabelSelectorText.Parse("app=web,tier==front, env!=prod,track notin (canary,beta),kubecapture.io/target,!legacy");

        Assert.Equal(new Dictionary<string, string> { ["app"] = "web", ["tier"] = "front" }, selector.MatchLabels);
        Assert.Equal(
            ["env NotIn prod", "track NotIn canary,beta", "kubecapture.io/target Exists ", "legacy DoesNotExist "],
            selector.MatchExpressions.Select(e => $"{e.Key} {e.OperatorProperty} {string.Join(",", e.Values ?? [])}"));
    }

    [Theory]
    [InlineData("app=web,", "invalid selector 'app=web,': an empty term (use app=web or app=web,tier in (api,db))")]
    [InlineData("app in (web", "invalid selector 'app in (web': unbalanced parentheses")]
    [InlineData("app=we b", "invalid selector term 'app=we b': 'we b' is not a label value")]
    [InlineData("-app=web", "invalid selector term '-app=web': '-app' is not a label key")]
    [InlineData("app=web,app=db", "selector 'app=web,app=db' asks for app=web and app=db: no pod matches both")]
    public void A_malformed_selector_is_refused_naming_the_term(string text, string message)
    {
        var e = Assert.Throws<UsageException>(() => LabelSelectorText.Parse(text));

        Assert.Equal(message, e.Message);
    }
}
