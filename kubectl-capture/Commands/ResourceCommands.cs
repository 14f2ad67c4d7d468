using k8s;
using k8s.Autorest;
using k8s.Models;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Arguments;
using KubeCapture.Contracts.Resources;
using KubeCapture.KubectlPlugin.Cli;
using KubeCapture.KubectlPlugin.Cluster;
using KubeCapture.KubectlPlugin.Reports;

namespace KubeCapture.KubectlPlugin.Commands;

/// <summary><c>list</c>, <c>status NAME</c> and <c>stop NAME</c>: the PacketCapture resource itself.</summary>
public static class ResourceCommands
{
    /// <summary>What list takes: nothing but the cluster options.</summary>
    public static void CheckList(PluginArguments args)
    {
        args.Allow();
        if (args.Words.Count > 0)
        {
            throw new UsageException($"list takes no names (got '{string.Join(' ', args.Words)}'); for one capture: kubectl capture status NAME");
        }
    }

    /// <summary>What status and stop take: one capture name.</summary>
    public static string CheckNamed(PluginArguments args)
    {
        args.Allow();
        return OneName(args);
    }

    public static async Task<int> ListAsync(ClusterConnection cluster, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        var list = await cluster.Client.CustomObjects.ListNamespacedCustomObjectAsync<PacketCaptureList>(
            PacketCapture.Group, PacketCapture.Version, cluster.Namespace, PacketCapture.Plural, cancellationToken: cancellationToken);
        if (list.Items.Count == 0)
        {
            stderr.WriteLine($"No captures in namespace {cluster.Namespace}.");
            return 0;
        }

        CaptureReport.WriteTable(stdout, list.Items.OrderBy(c => c.Metadata.CreationTimestamp).ToList(), DateTime.UtcNow);
        return 0;
    }

    public static async Task<int> StatusAsync(string name, ClusterConnection cluster, TextWriter stdout, CancellationToken cancellationToken)
    {
        var capture = await GetAsync(cluster, name, cancellationToken);
        CaptureReport.WriteStatus(stdout, capture);
        return 0;
    }

    /// <summary>Sets spec.stop (the one field that may change): each agent finishes its pcap and uploads it. A capture that already ended is left alone.</summary>
    public static async Task<int> StopAsync(string name, ClusterConnection cluster, TextWriter stdout, CancellationToken cancellationToken)
    {
        var capture = await GetAsync(cluster, name, cancellationToken);
        if (CapturePhase.IsTerminal(capture.Status?.Phase))
        {
            stdout.WriteLine($"{name} already ended ({capture.Status!.Phase}): nothing to stop");
            return 0;
        }

        await cluster.Client.CustomObjects.PatchNamespacedCustomObjectAsync<PacketCapture>(
            new V1Patch("""{"spec":{"stop":true}}""", V1Patch.PatchType.MergePatch),
            PacketCapture.Group, PacketCapture.Version, cluster.Namespace, PacketCapture.Plural, name, cancellationToken: cancellationToken);
        stdout.WriteLine($"{name} stopping: each agent finishes its pcap and uploads it (kubectl capture status {name})");
        return 0;
    }

    /// <summary><c>snapshot NAME [--pod P]</c>: a snapshot by hand of a flight recording, through the operator's extension API (RBAC: create packetcaptures/snapshot).</summary>
    public static async Task<int> SnapshotAsync((string Name, string? Pod) asked, ClusterConnection cluster, TextWriter stdout, CancellationToken cancellationToken)
    {
        using var response = await cluster.PostAsync(ExtensionApi.PathOf(cluster.Namespace, asked.Name, ExtensionApi.Snapshot, asked.Pod), cancellationToken);
        using var status = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync(cancellationToken));
        stdout.WriteLine(status.RootElement.TryGetProperty("message", out var message) ? message.GetString() : $"snapshot of {asked.Name} asked");
        stdout.WriteLine($"(kubectl capture status {asked.Name} lists it once stored; kubectl capture download {asked.Name} --snapshot N)");
        return 0;
    }

    public static string OneName(PluginArguments args) => args.Words switch
    {
        [var name] => name,
        [] => throw new UsageException($"{args.Command} needs the capture's name: kubectl capture {args.Command} NAME (kubectl capture list shows them)"),
        _ => throw new UsageException($"{args.Command} takes one capture name, got {args.Words.Count}: {string.Join(' ', args.Words)}"),
    };

    public static async Task<PacketCapture> GetAsync(ClusterConnection cluster, string name, CancellationToken cancellationToken)
    {
        try
        {
            return await cluster.Client.CustomObjects.GetNamespacedCustomObjectAsync<PacketCapture>(
                PacketCapture.Group, PacketCapture.Version, cluster.Namespace, PacketCapture.Plural, name, cancellationToken);
        }
        catch (HttpOperationException e)
        {
            throw new ClusterException(ServerErrors.Describe(e));
        }
    }
}
