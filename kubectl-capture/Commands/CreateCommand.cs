using k8s;
using k8s.Autorest;
using k8s.Models;
using KubeCapture.Contracts.Resources;
using KubeCapture.KubectlPlugin.Cli;
using KubeCapture.KubectlPlugin.Cluster;
using KubeCapture.KubectlPlugin.Reports;

namespace KubeCapture.KubectlPlugin.Commands;

/// <summary><c>kubectl capture POD ...</c>: creates the PacketCapture, prints its name; with <c>--wait</c>, waits for its end (a watch, not polling) and prints the outcome.</summary>
public static class CreateCommand
{
    public static async Task<int> RunAsync(NewCapture request, ClusterConnection cluster, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        var body = new PacketCapture
        {
            Metadata = new V1ObjectMeta { Name = request.Name, GenerateName = request.Name is null ? request.GenerateName : null, NamespaceProperty = cluster.Namespace },
            Spec = request.Spec,
        };
        var created = await cluster.Client.CustomObjects.CreateNamespacedCustomObjectAsync<PacketCapture>(
            body, PacketCapture.Group, PacketCapture.Version, cluster.Namespace, PacketCapture.Plural, cancellationToken: cancellationToken);
        stdout.WriteLine(created.Metadata.Name);
        stdout.Flush();
        if (!request.Wait)
        {
            return 0;
        }

        var done = await WaitForEndAsync(cluster, created, cancellationToken);
        if (done is null)
        {
            stderr.WriteLine($"kubectl-capture: {created.Metadata.Name} was deleted before it ended");
            return 1;
        }

        stdout.WriteLine(CaptureReport.Outcome(done));
        return done.Status?.Phase == CapturePhase.Succeeded ? 0 : 1;
    }

    /// <summary>Watches one capture (by name) until its phase is Succeeded or Failed; null when it was deleted first.</summary>
    public static async Task<PacketCapture?> WaitForEndAsync(ClusterConnection cluster, PacketCapture capture, CancellationToken cancellationToken)
    {
        var current = capture;
        while (true)
        {
            if (CapturePhase.IsTerminal(current.Status?.Phase))
            {
                return current;
            }

            var deleted = false;
            try
            {
                var events = cluster.Client.CustomObjects.WatchListNamespacedCustomObjectAsync(
                    PacketCapture.Group, PacketCapture.Version, cluster.Namespace, PacketCapture.Plural,
                    fieldSelector: $"metadata.name={capture.Metadata.Name}", resourceVersion: current.Metadata.ResourceVersion,
                    timeoutSeconds: 300, cancellationToken: cancellationToken);
                await foreach (var (type, item) in events)
                {
                    if (type == WatchEventType.Deleted)
                    {
                        deleted = true;
                        break;
                    }

                    if (type is WatchEventType.Added or WatchEventType.Modified)
                    {
                        current = KubernetesJson.Deserialize<PacketCapture>(KubernetesJson.Serialize(item));
                        if (CapturePhase.IsTerminal(current.Status?.Phase))
                        {
                            return current;
                        }
                    }
                }
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.Gone)
            {
                // resourceVersion too old: read it again below and watch from there
            }
            catch (KubernetesException e) when (e.Status?.Code == 410)
            {
                // the same, said inside the watch stream
            }

            if (deleted)
            {
                return null;
            }

            try
            {
                current = await cluster.Client.CustomObjects.GetNamespacedCustomObjectAsync<PacketCapture>(
                    PacketCapture.Group, PacketCapture.Version, cluster.Namespace, PacketCapture.Plural, capture.Metadata.Name, cancellationToken);
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.NotFound)
            {
                return null;
            }
        }
    }
}
