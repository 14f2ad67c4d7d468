using KubeCapture.Testing.Processes;

namespace KubeCapture.Testing.RealNode;

/// <summary>
/// The node IP and the pods' network: the node IP as a /32 on lo (fact 3); a bridge that carries
/// the pod gateway address itself, so the CNI bridge plugin runs with <c>isGateway: false</c> and
/// never turns on forwarding host-wide (fact 7) — forwarding is on for this bridge alone, which
/// kube-proxy's Service DNAT between two pods needs; no masquerade; and routes in each pod to the
/// pod range, the Service range and the node IP only: no default route, nothing leaves the machine.
/// </summary>
public static class PodBridge
{
    public static async Task AddNodeIpAsync(NodeLayout layout, NodeJournal journal)
    {
        if (!await HostState.HasAddressAsync(NodeLayout.NodeIp))
        {
            journal.NodeIpAdded = true;
            journal.Write(layout);
            (await HostCommand.RunAsync("ip", "addr", "add", $"{NodeLayout.NodeIp}/32", "dev", "lo")).EnsureSuccess();
        }
    }

    public static async Task CreateAsync(NodeLayout layout, NodeJournal journal)
    {
        if (!await HostState.LinkExistsAsync(NodeLayout.Bridge))
        {
            journal.BridgeCreated = true;
            journal.Write(layout);
            (await HostCommand.RunAsync("ip", "link", "add", NodeLayout.Bridge, "type", "bridge")).EnsureSuccess();
        }

        await HostCommand.RunAsync("ip", "addr", "replace", $"{NodeLayout.PodGateway}/24", "dev", NodeLayout.Bridge);
        (await HostCommand.RunAsync("ip", "link", "set", NodeLayout.Bridge, "up")).EnsureSuccess();
        // Forwarding for packets that arrive on this bridge only: a pod's packet to a ClusterIP is
        // DNATed to another pod on the same bridge and goes back out of it.
        HostState.WriteSysctl($"net.ipv4.conf.{NodeLayout.Bridge}.forwarding", "1");

        Directory.CreateDirectory(layout.CniConfDir);
        Directory.CreateDirectory(layout.CniIpamDir);
        var conflist = $$"""
            {
              "cniVersion": "1.0.0",
              "name": "kcnode",
              "plugins": [
                {
                  "type": "bridge",
                  "bridge": "{{NodeLayout.Bridge}}",
                  "isGateway": false,
                  "isDefaultGateway": false,
                  "ipMasq": false,
                  "hairpinMode": true,
                  "ipam": {
                    "type": "host-local",
                    "dataDir": "{{layout.CniIpamDir}}",
                    "ranges": [[{ "subnet": "{{NodeLayout.PodCidr}}", "gateway": "{{NodeLayout.PodGateway}}" }]],
                    "routes": [
                      { "dst": "{{NodeLayout.ServiceCidr}}", "gw": "{{NodeLayout.PodGateway}}" },
                      { "dst": "{{NodeLayout.NodeIp}}/32", "gw": "{{NodeLayout.PodGateway}}" }
                    ]
                  }
                }
              ]
            }
            """;
        // containerd reloads the CNI configuration on every write: a complete file appears at once.
        var temporary = Path.Combine(layout.CniConfDir, ".10-kcnode.conflist.new");
        File.WriteAllText(temporary, conflist);
        File.Move(temporary, Path.Combine(layout.CniConfDir, "10-kcnode.conflist"), overwrite: true);
    }

    public static async Task RemoveAsync(NodeJournal journal)
    {
        if (journal.BridgeCreated)
        {
            await HostCommand.RunAsync("ip", "link", "del", NodeLayout.Bridge);
        }

        if (journal.NodeIpAdded)
        {
            await HostCommand.RunAsync("ip", "addr", "del", $"{NodeLayout.NodeIp}/32", "dev", "lo");
        }
    }
}
