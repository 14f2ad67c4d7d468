using k8s;
using KubeCapture.Testing.RealNode;

namespace KubeCapture.Operator.Tests.RealNode;

/// <summary>One node of ours per machine: the kubelet, containerd and CNI use fixed host paths.</summary>
[Collection(RealNodeCollection.Name)]
public sealed class NodeLockTests(RealNodeCluster cluster)
{
    [SkippableFact]
    public async Task A_second_node_on_the_same_machine_is_refused_with_exit_3_naming_the_running_one_and_the_running_node_is_untouched()
    {
        cluster.Require();

        var second = await NodeProcess.StartAsync([], TimeSpan.FromMinutes(1)).ContinueWith(t => t.Exception?.InnerException);
        var node = Assert.Single((await cluster.Admin.CoreV1.ListNodeAsync()).Items);

        var busy = Assert.IsType<NodeBusyException>(second);
        Assert.Contains($"another KubeCapture node runs on this machine (pid ", busy.Message, StringComparison.Ordinal);
        Assert.Contains($"state {cluster.Node.Directory}", busy.Message, StringComparison.Ordinal);
        Assert.Contains("one node per machine", busy.Message, StringComparison.Ordinal);
        Assert.Contains(node.Status.Conditions, c => c.Type == "Ready" && c.Status == "True");
        Assert.True(File.Exists(Path.Combine(cluster.Node.Directory, "state.json")));
    }
}
