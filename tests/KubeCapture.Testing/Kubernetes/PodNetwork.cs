using System.Globalization;
using KubeCapture.Testing.Netns;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Testing.Kubernetes;

/// <summary>
/// A "pod" for the test kubelet: a network namespace joined by a veth pair to a client namespace,
/// with link-local addresses that never leave the machine. Names carry the kcK prefix, the process
/// id and a counter, so parallel tests (and other helpers' tests) never collide.
/// </summary>
public sealed class PodNetwork : IDisposable
{
    private static int counter;

    private string? nodeInterface;
    private NodeLinkSubnet? nodeLink;

    private PodNetwork(string podNamespace, string clientNamespace, string podAddress, string clientAddress)
    {
        PodNamespace = podNamespace;
        ClientNamespace = clientNamespace;
        PodAddress = podAddress;
        ClientAddress = clientAddress;
    }

    public string PodNamespace { get; }

    public string ClientNamespace { get; }

    public string PodAddress { get; }

    public string ClientAddress { get; }

    public static PodNetwork Create()
    {
        var n = Interlocked.Increment(ref counter);
        var id = $"{Environment.ProcessId % 100000}{(char)('a' + (n / 60 % 26))}{n % 60}";
        var pod = $"kcK-{id}-pod";
        var client = $"kcK-{id}-cli";
        var subnet = (n % 60) * 4;
        var podAddress = $"169.254.89.{subnet + 1}";
        var clientAddress = $"169.254.89.{subnet + 2}";
        Run("ip", "netns", "add", pod);
        Run("ip", "netns", "add", client);
        Run("ip", "link", "add", $"kcK{id}p", "netns", pod, "type", "veth", "peer", "name", $"kcK{id}c", "netns", client);
        Run("ip", "-n", pod, "addr", "add", $"{podAddress}/30", "dev", $"kcK{id}p");
        Run("ip", "-n", client, "addr", "add", $"{clientAddress}/30", "dev", $"kcK{id}c");
        foreach (var (ns, dev) in new[] { (pod, $"kcK{id}p"), (client, $"kcK{id}c") })
        {
            Run("ip", "-n", ns, "link", "set", dev, "up");
            Run("ip", "-n", ns, "link", "set", "lo", "up");
        }

        return new PodNetwork(pod, client, podAddress, clientAddress);
    }

    /// <summary>
    /// Joins the pod to the node (the root namespace) by a second veth pair, as the node's pod network
    /// would, on a /30 no other test process uses (<see cref="NodeLinkSubnets"/>): the node side gets .1,
    /// the pod side .2 (<see cref="NodeLinkAddress"/>, the pod's IP as the node sees it). Returns the
    /// node-side address, where a service on the node (the operator's ingest) can listen for the pod's
    /// agent. The pod's default route goes to the node, as in a cluster, so the pod reaches any node
    /// address over it, a <see cref="NodeService"/> too.
    /// </summary>
    public string ConnectToNode()
    {
        var n = Interlocked.Increment(ref counter);
        nodeLink = NodeLinkSubnets.Lease();
        var nodeAddress = nodeLink.NodeAddress;
        nodeInterface = $"kcK{Environment.ProcessId % 100000}n{n % 60}";
        var podSide = nodeInterface + "p";
        Run("ip", "link", "add", nodeInterface, "type", "veth", "peer", "name", podSide, "netns", PodNamespace);
        Run("ip", "addr", "add", $"{nodeAddress}/30", "dev", nodeInterface);
        Run("ip", "link", "set", nodeInterface, "up");
        NodeLinkAddress = nodeLink.PodAddress;
        Run("ip", "-n", PodNamespace, "addr", "add", $"{NodeLinkAddress}/30", "dev", podSide);
        Run("ip", "-n", PodNamespace, "link", "set", podSide, "up");
        Run("ip", "-n", PodNamespace, "route", "add", "default", "via", nodeAddress, "dev", podSide, "src", NodeLinkAddress);
        return nodeAddress;
    }

    /// <summary>The pod's address on its link to the node (after <see cref="ConnectToNode"/>): what the pod's status reports as its IP.</summary>
    public string? NodeLinkAddress { get; private set; }

    /// <summary>Pings the pod from the client namespace: ICMP echo requests and replies on the pod's veth.</summary>
    public void PingFromClient(int count, int size = 56, double interval = 0.2) =>
        Run("ip", "netns", "exec", ClientNamespace, "ping", "-n", "-q", "-c", count.ToString(CultureInfo.InvariantCulture),
            "-s", size.ToString(CultureInfo.InvariantCulture), "-i", interval.ToString(CultureInfo.InvariantCulture), "-W", "1", PodAddress);

    public void Dispose()
    {
        if (nodeInterface is not null)
        {
            TryRun("ip", "link", "del", nodeInterface);
        }

        nodeLink?.Dispose();

        TryRun("ip", "netns", "del", PodNamespace);
        TryRun("ip", "netns", "del", ClientNamespace);
    }

    private static void Run(params string[] args) => TryRun(args).EnsureSuccess();

    private static CommandResult TryRun(params string[] args) =>
        HostCommand.RunAsync(args[0], args.Skip(1)).GetAwaiter().GetResult();
}
