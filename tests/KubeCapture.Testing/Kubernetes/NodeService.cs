using System.Globalization;
using KubeCapture.Testing.Netns;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Testing.Kubernetes;

/// <summary>
/// One address on the node (the root namespace) that every pod reaches over its own link
/// (<see cref="PodNetwork.ConnectToNode"/>), as pods reach a Service: one /32 on the node's
/// loopback interface (no dummy interfaces in these kernels), the first address of a /30 leased from
/// <see cref="NodeLinkSubnets"/>, so parallel test runs never share it. The operator's ingest
/// listens here, and the reconciler gives this address to every agent.
/// </summary>
public sealed class NodeService : IDisposable
{
    private readonly NodeLinkSubnet lease;

    private NodeService(NodeLinkSubnet lease, string address)
    {
        this.lease = lease;
        Address = address;
    }

    public string Address { get; }

    /// <summary>
    /// A new node address; <paramref name="routable"/>: in 198.18.0.0/15 instead of link-local, for
    /// an address kube-apiserver accepts in hand-written Endpoints (an extension API server's).
    /// </summary>
    public static async Task<NodeService> CreateAsync(bool routable = false)
    {
        var lease = NodeLinkSubnets.Lease();
        var address = routable ? lease.RoutableNodeAddress : lease.NodeAddress;
        await HostCommand.RunAsync("ip", "addr", "del", $"{address}/32", "dev", "lo"); // left by a killed run
        (await HostCommand.RunAsync("ip", "addr", "add", $"{address}/32", "dev", "lo")).EnsureSuccess();
        return new NodeService(lease, address);
    }

    public string Url(int port) => string.Create(CultureInfo.InvariantCulture, $"http://{Address}:{port}");

    public void Dispose()
    {
        HostCommand.RunAsync("ip", "addr", "del", $"{Address}/32", "dev", "lo").GetAwaiter().GetResult();
        lease.Dispose();
    }
}
