using KubeCapture.Contracts.Arguments;
using KubeCapture.KubectlPlugin.Cli;

namespace KubeCapture.KubectlPlugin.Tests.Cli;

/// <summary>kubectl's conventions for options: anywhere on the line, short and long forms, '=' or a space.</summary>
public sealed class PluginArgumentsTests
{
    [Fact]
    public void Cluster_options_are_taken_anywhere_in_every_form()
    {
        var parsed = PluginArguments.Parse(["status", "--context=staging", "x", "-npayments", "--kubeconfig", "/k"]);

        Assert.Equal("status", parsed.Command);
        Assert.Equal(["x"], parsed.Words);
        Assert.Equal(new ClusterSelection("/k", "staging", "payments"), parsed.Cluster);
    }

    [Fact]
    public void A_word_that_is_no_command_is_the_pod_of_a_new_capture_and_double_dash_ends_the_options()
    {
        var parsed = PluginArguments.Parse(["-n", "payments", "api", "--reason", "r", "--", "-x"]);

        Assert.Equal(PluginArguments.Create, parsed.Command);
        Assert.Equal(["api", "-x"], parsed.Words);
        Assert.Equal("payments", parsed.Cluster.Namespace);
    }

    [Fact]
    public void A_short_option_with_equals_takes_what_follows_as_kubectl_does()
    {
        var parsed = PluginArguments.Parse(["list", "-n=payments"]);

        Assert.Equal("payments", parsed.Cluster.Namespace);
    }

    [Fact]
    public void Tcpdumps_double_n_is_refused_saying_kubectl_would_read_namespace_n_and_how_to_write_it()
    {
        var error = Assert.Throws<UsageException>(() => PluginArguments.Parse(["api", "--reason", "r", "-nn", "port 80"]));

        Assert.Contains("kubectl reads it as -n n, the namespace \"n\"", error.Message, StringComparison.Ordinal);
        Assert.Contains("captures never resolve names", error.Message, StringComparison.Ordinal);
        Assert.EndsWith("To name namespace n, write -n n", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Help_wins_over_everything_else()
    {
        Assert.Equal("help", PluginArguments.Parse(["download", "x", "-h"]).Command);
    }

    [Theory]
    [InlineData(new[] { "-n", "a", "--namespace", "b", "list" }, "option --namespace is given twice")]
    [InlineData(new[] { "list", "--wait=yes" }, "option --wait takes no value")]
    [InlineData(new[] { "list", "-n", "" }, "option -n needs a non-empty value")]
    public void Options_given_wrongly_are_refused(string[] args, string message)
    {
        var e = Assert.Throws<UsageException>(() => PluginArguments.Parse(args));

        Assert.Equal(message, e.Message);
    }
}
