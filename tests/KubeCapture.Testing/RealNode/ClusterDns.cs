using System.Globalization;
using System.Text;
using k8s;
using k8s.Models;

namespace KubeCapture.Testing.RealNode;

/// <summary>
/// Cluster DNS (fact 14): dnsmasq on the node IP, which the kubelet gives pods as their nameserver
/// (<c>clusterDNS</c>), answering <c>SERVICE.NAMESPACE.svc.cluster.local</c> with the Service's
/// ClusterIP from a hosts file that a watch of the Services keeps current (dnsmasq rereads its
/// <c>--hostsdir</c> on every change). No upstream server: a name outside the cluster gets no answer
/// from here, nothing leaves the machine.
/// </summary>
public sealed class ClusterDns : IAsyncDisposable
{
    private readonly CancellationTokenSource stopping = new();
    private Task watching = Task.CompletedTask;

    private ClusterDns(NodeDaemon dnsmasq) => Dnsmasq = dnsmasq;

    public NodeDaemon Dnsmasq { get; }

    public static ClusterDns Start(NodeLayout layout, IKubernetes admin)
    {
        Directory.CreateDirectory(layout.DnsHostsDir);
        var dnsmasq = NodeDaemon.Start(layout, "dnsmasq", NodeBinaries.Dnsmasq,
        [
            "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--no-poll",
            "--bind-interfaces", $"--listen-address={NodeLayout.NodeIp}", "--port=53",
            $"--hostsdir={layout.DnsHostsDir}", $"--local=/{NodeLayout.ClusterDomain}/", "--cache-size=0",
            "--user=root", "--group=root", "--pid-file=", "--log-facility=-",
        ]);
        var dns = new ClusterDns(dnsmasq);
        dns.watching = Task.Run(() => dns.KeepCurrentAsync(layout, admin, dns.stopping.Token));
        return dns;
    }

    /// <summary>The hosts file of <paramref name="services"/>: one line per Service with a ClusterIP.</summary>
    public static string HostsFile(IEnumerable<V1Service> services)
    {
        var text = new StringBuilder();
        foreach (var service in services.OrderBy(s => s.Metadata.NamespaceProperty, StringComparer.Ordinal).ThenBy(s => s.Metadata.Name, StringComparer.Ordinal))
        {
            if (service.Spec?.ClusterIP is { Length: > 0 } ip && ip != "None")
            {
                text.Append(CultureInfo.InvariantCulture, $"{ip} {service.Metadata.Name}.{service.Metadata.NamespaceProperty}.svc.{NodeLayout.ClusterDomain}\n");
            }
        }

        return text.ToString();
    }

    public async ValueTask DisposeAsync()
    {
        await stopping.CancelAsync();
        try
        {
            await watching;
        }
        catch (OperationCanceledException)
        {
        }

        stopping.Dispose();
    }

    private async Task KeepCurrentAsync(NodeLayout layout, IKubernetes admin, CancellationToken cancellationToken)
    {
        var hosts = Path.Combine(layout.DnsHostsDir, "services");
        // Written beside the directory dnsmasq reads, then moved in: it never reads half a file.
        var temporary = Path.Combine(layout.Directory, "dns-services.new");
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var list = await admin.CoreV1.ListServiceForAllNamespacesAsync(cancellationToken: cancellationToken);
                var services = list.Items.ToDictionary(Key);
                Write(temporary, hosts, services.Values);
                await foreach (var (type, service) in admin.CoreV1.WatchListServiceForAllNamespacesAsync(resourceVersion: list.Metadata.ResourceVersion, timeoutSeconds: 300, cancellationToken: cancellationToken))
                {
                    if (type == WatchEventType.Deleted)
                    {
                        services.Remove(Key(service));
                    }
                    else if (type is WatchEventType.Added or WatchEventType.Modified)
                    {
                        services[Key(service)] = service;
                    }

                    Write(temporary, hosts, services.Values);
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // The API restarting, a watch cut: list again after a moment.
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
            }
        }
    }

    private static string Key(V1Service service) => $"{service.Metadata.NamespaceProperty}/{service.Metadata.Name}";

    private static void Write(string temporary, string path, IEnumerable<V1Service> services)
    {
        File.WriteAllText(temporary, HostsFile(services));
        File.Move(temporary, path, overwrite: true);
    }
}
