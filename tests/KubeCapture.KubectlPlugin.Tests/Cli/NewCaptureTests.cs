using KubeCapture.Contracts.Arguments;
using KubeCapture.KubectlPlugin.Cli;

namespace KubeCapture.KubectlPlugin.Tests.Cli;

/// <summary>The tcpdump vocabulary turned into a PacketCapture spec.</summary>
public sealed class NewCaptureTests
{
    [Fact]
    public void Tcpdump_options_become_the_spec_fields_and_the_remaining_words_the_filter()
    {
        var capture = NewCapture.From(PluginArguments.Parse(["api-7d9f", "-i", "eth0", "-s96", "-c", "500", "--duration=1m30s", "--max-bytes", "16Mi", "--reason", "partner API calls time out", "host", "203.0.113.40", "and", "tcp", "port", "443"]));

        var spec = capture.Spec;
        Assert.Equal("api-7d9f", spec.Target.PodName);
        Assert.Null(spec.Target.PodSelector);
        Assert.Equal(("eth0", 96, 500L, "1m30s", "16Mi"), (spec.Interface, spec.Snaplen!.Value, spec.MaxPackets!.Value, spec.Duration, spec.MaxBytes));
        Assert.Equal("host 203.0.113.40 and tcp port 443", spec.Filter);
        Assert.Equal("partner API calls time out", spec.Reason);
        Assert.Null(capture.Name);
        Assert.Equal("api-7d9f-", capture.GenerateName);
        Assert.False(capture.Wait);
    }

    [Fact]
    public void Without_options_only_the_required_duration_is_set_and_the_operator_applies_its_defaults()
    {
        var capture = NewCapture.From(PluginArguments.Parse(["pod/list", "--reason", "why", "--wait"]));

        Assert.Equal("list", capture.Spec.Target.PodName); // pod/NAME for a pod named like a command
        Assert.Equal("60s", capture.Spec.Duration);
        Assert.Equal((null, null, null, null, null), (capture.Spec.Interface, capture.Spec.Snaplen, capture.Spec.MaxPackets, capture.Spec.MaxBytes, capture.Spec.Filter));
        Assert.True(capture.Wait);
    }

    [Theory]
    [InlineData("1.5Mi", "1572864")] // the resource's schema takes no fractions: bytes
    [InlineData("64MiB", "64MiB")]
    [InlineData("1048576", "1048576")]
    public void Sizes_are_kept_as_typed_where_the_resource_takes_them_else_in_bytes(string typed, string stored)
    {
        var capture = NewCapture.From(PluginArguments.Parse(["api", "--reason", "r", "--max-bytes", typed]));

        Assert.Equal(stored, capture.Spec.MaxBytes);
    }

    [Theory]
    [InlineData("1m30s", "1m30s")]
    [InlineData(" 90s ", "1m30s")] // what the agent reads, written as the resource's schema takes it
    [InlineData("2.5s", "2.5s")]
    public void Durations_are_kept_as_typed_where_the_resource_takes_them(string typed, string stored)
    {
        var capture = NewCapture.From(PluginArguments.Parse(["api", "--reason", "r", "--duration", typed]));

        Assert.Equal(stored, capture.Spec.Duration);
    }

    [Fact]
    public void A_selector_captures_every_matching_pod_and_all_words_are_the_filter()
    {
        var capture = NewCapture.From(PluginArguments.Parse(["-l", "app in (web,db)", "--reason", "who sent the RST", "--name", "both-ends", "tcp", "port", "5432"]));

        Assert.Null(capture.Spec.Target.PodName);
        var requirement = Assert.Single(capture.Spec.Target.PodSelector!.MatchExpressions);
        Assert.Equal(("app", "In"), (requirement.Key, requirement.OperatorProperty));
        Assert.Equal(["web", "db"], requirement.Values);
        Assert.Equal("tcp port 5432", capture.Spec.Filter);
        Assert.Equal("both-ends", capture.Name);
    }

    [Fact]
    public void The_filter_is_compiled_by_libpcap_for_the_interfaces_link_type()
    {
        // "ether host" needs Ethernet headers: fine on eth0, refused on any (Linux cooked) by libpcap itself.
        var onEthernet = NewCapture.From(PluginArguments.Parse(["api", "-i", "eth0", "--reason", "r", "ether host 02:00:00:00:00:01"]));
        var onAny = Assert.Throws<UsageException>(() => NewCapture.From(PluginArguments.Parse(["api", "--reason", "r", "ether host 02:00:00:00:00:01"])));

        Assert.Equal("ether host 02:00:00:00:00:01", onEthernet.Spec.Filter);
        Assert.StartsWith("invalid filter 'ether host 02:00:00:00:00:01': ", onAny.Message, StringComparison.Ordinal);
    }
}
