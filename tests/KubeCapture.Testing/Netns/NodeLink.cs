using System.Globalization;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Testing.Netns;

/// <summary>
/// A pod's link to the node (the root namespace), as the node's pod network gives it: a veth pair on
/// a /30 that no other test process uses (<see cref="NodeLinkSubnets"/>), the node side .1
/// (<see cref="NodeAddress"/>), the pod side .2 (<see cref="PodAddress"/>, the pod's IP as the node
/// sees it), and the pod's default route to the node, so the pod reaches any node address over it
/// (a NodeService, the operator's ingest). Dispose deletes the pair and gives the subnet back.
/// </summary>
public sealed class NodeLink : IDisposable
{
    private readonly NodeLinkSubnet _subnet;
    private bool _disposed;

    private NodeLink(NodeLinkSubnet subnet, string nodeInterface)
    {
        _subnet = subnet;
        NodeInterface = nodeInterface;
    }

    public string NodeAddress => _subnet.NodeAddress;

    public string PodAddress => _subnet.PodAddress;

    /// <summary>The node side of the pair, in the root namespace.</summary>
    public string NodeInterface { get; }

    /// <summary>The pod side of the pair, inside the pod.</summary>
    public string PodInterface => NodeInterface + "p";

    /// <summary>Joins <paramref name="pod"/> to the node; with <paramref name="defaultRoute"/>, its default route goes to the node.</summary>
    public static async Task<NodeLink> ConnectAsync(NetnsPod pod, bool defaultRoute = true)
    {
        ArgumentNullException.ThrowIfNull(pod);
        var subnet = NodeLinkSubnets.Lease();
        // The lease index is unique on the machine: so is the interface name (at most 15 characters).
        var link = new NodeLink(subnet, string.Create(CultureInfo.InvariantCulture, $"kcnode{subnet.Index}"));
        try
        {
            await Ip("link", "add", link.NodeInterface, "type", "veth", "peer", "name", link.PodInterface, "netns", pod.Name);
            await Ip("addr", "add", $"{link.NodeAddress}/30", "dev", link.NodeInterface);
            await Ip("link", "set", link.NodeInterface, "up");
            await Ip("-n", pod.Name, "addr", "add", $"{link.PodAddress}/30", "dev", link.PodInterface);
            await Ip("-n", pod.Name, "link", "set", link.PodInterface, "up");
            if (defaultRoute)
            {
                await Ip("-n", pod.Name, "route", "add", "default", "via", link.NodeAddress, "dev", link.PodInterface, "src", link.PodAddress);
            }
        }
        catch
        {
            link.Dispose();
            throw;
        }

        return link;
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        HostCommand.RunAsync("ip", "link", "del", NodeInterface).GetAwaiter().GetResult();
        _subnet.Dispose();
    }

    private static Task<CommandResult> Ip(params string[] arguments) => HostCommand.CheckedAsync("ip", arguments);
}
