using KubeCapture.Contracts;
using KubeCapture.Contracts.Arguments;
using KubeCapture.KubectlPlugin.Cli;
using KubeCapture.KubectlPlugin.Commands;

namespace KubeCapture.KubectlPlugin.Tests.Commands;

/// <summary><c>download NAME --snapshot N</c>: which subresource path it reads, the file it writes, and a number that is not one refused before the cluster is asked.</summary>
public sealed class DownloadSnapshotTests
{
    [Fact]
    public void A_snapshot_is_downloaded_from_pcap_with_its_number_into_a_file_named_after_it()
    {
        var request = DownloadCommand.Check(PluginArguments.Parse(["download", "db-resets", "--pod", "db-0", "--snapshot", "2"]));

        Assert.Equal(("db-resets-db-0-snapshot-2.pcap", 2), (request.Output, request.Snapshot));
        Assert.Equal("/apis/subresources.kubecapture.io/v1alpha1/namespaces/shop/packetcaptures/db-resets/pcap?pod=db-0&snapshot=2",
            ExtensionApi.PathOf("shop", request.Name, ExtensionApi.Pcap, request.Pod, request.Snapshot));
        Assert.Equal("/apis/subresources.kubecapture.io/v1alpha1/namespaces/shop/packetcaptures/db-resets/manifest?snapshot=1",
            ExtensionApi.PathOf("shop", "db-resets", ExtensionApi.Manifest, null, 1));
    }

    [Theory]
    [InlineData("0")]
    [InlineData("first")]
    [InlineData("-1")]
    public void A_snapshot_number_that_is_not_one_is_refused_naming_it(string typed)
    {
        var refused = Assert.Throws<UsageException>(() => DownloadCommand.Check(PluginArguments.Parse(["download", "db-resets", $"--snapshot={typed}"])));

        Assert.Equal($"invalid --snapshot '{typed}': the snapshot's number, 1 for the first (kubectl capture status db-resets lists them)", refused.Message);
    }
}
