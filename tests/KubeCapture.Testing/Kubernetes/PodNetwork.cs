using System.Globalization;
using KubeCapture.Testing.Netns;

namespace KubeCapture.Testing.Kubernetes;

/// <summary>
/// A "pod" for the test kubelet: the server pod of a <see cref="NetnsLab"/> (prefix kcK) with one
/// client namespace beside it that sends it traffic, and optionally its <see cref="NodeLink"/> to
/// the node. The namespaces, veths and node links are those of <see cref="NetnsLab"/> and
/// <see cref="NodeLink"/>: this class only names them as the kubelet sees them.
/// </summary>
public sealed class PodNetwork : IDisposable
{
    private readonly NetnsLab lab;
    private NodeLink? nodeLink;

    private PodNetwork(NetnsLab lab) => this.lab = lab;

    /// <summary>The pod's network namespace.</summary>
    public NetnsPod Pod => lab.Server;

    /// <summary>A namespace beside the pod, on its own veth to it, that plays the pod's clients.</summary>
    public NetnsPod Client => lab.Client;

    public string PodNamespace => lab.Server.Name;

    public string ClientNamespace => lab.Client.Name;

    /// <summary>The pod's address on the link to its client.</summary>
    public string PodAddress => lab.Server.IPv4.ToString();

    public string ClientAddress => lab.Client.IPv4.ToString();

    /// <summary>The pod's address on its link to the node (after <see cref="ConnectToNode"/>): what the pod's status reports as its IP.</summary>
    public string? NodeLinkAddress => nodeLink?.PodAddress;

    public static PodNetwork Create() => CreateAsync().GetAwaiter().GetResult();

    public static async Task<PodNetwork> CreateAsync() => new(await NetnsLab.CreateAsync("kcK"));

    /// <summary>
    /// Joins the pod to the node by a <see cref="NodeLink"/>, the pod's default route going to the
    /// node; returns the node-side address, where a service on the node can listen for the pod's agent.
    /// </summary>
    public string ConnectToNode() => ConnectToNodeAsync().GetAwaiter().GetResult();

    /// <inheritdoc cref="ConnectToNode"/>
    public async Task<string> ConnectToNodeAsync()
    {
        if (nodeLink is not null)
        {
            throw new InvalidOperationException("the pod is joined to the node already");
        }

        nodeLink = await NodeLink.ConnectAsync(lab.Server);
        return nodeLink.NodeAddress;
    }

    /// <summary>Pings the pod from the client namespace: ICMP echo requests and replies on the pod's veth.</summary>
    public void PingFromClient(int count, int size = 56, double interval = 0.2) =>
        lab.Client.ExecAsync("ping", "-n", "-q", "-c", count.ToString(CultureInfo.InvariantCulture),
            "-s", size.ToString(CultureInfo.InvariantCulture), "-i", interval.ToString(CultureInfo.InvariantCulture), "-W", "1", PodAddress)
            .GetAwaiter().GetResult().EnsureSuccess();

    public void Dispose()
    {
        nodeLink?.Dispose();
        lab.Dispose();
    }
}
