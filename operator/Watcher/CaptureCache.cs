using System.Text.Json;
using k8s;
using KubeCapture.Contracts.Resources;
using Microsoft.Extensions.Logging;

namespace KubeCapture.Operator.Watcher;

/// <summary>
/// The PacketCaptures, from one list+watch (informer-style). What the controller writes joins it at
/// once (<see cref="ResourceWatcher{T}.Offer"/>): the next reconcile starts from the object as written,
/// its new resourceVersion included, not from a watch event that may still be on its way.
/// </summary>
public sealed class CaptureCache
{
    private readonly IKubernetes kubernetes;

    public CaptureCache(IKubernetes kubernetes, ILogger logger, TimeProvider time)
    {
        this.kubernetes = kubernetes;
        Captures = new ResourceWatcher<PacketCapture>("PacketCapture", ListCapturesAsync, WatchCapturesAsync, logger, time);
    }

    public ResourceWatcher<PacketCapture> Captures { get; }

    /// <summary>The capture as the API server returned it after a write.</summary>
    public void Written(PacketCapture capture) => Captures.Offer(capture);

    private async Task<(IReadOnlyList<PacketCapture>, string)> ListCapturesAsync(CancellationToken cancellationToken)
    {
        var list = await kubernetes.CustomObjects.ListClusterCustomObjectAsync<PacketCaptureList>(
            PacketCapture.Group, PacketCapture.Version, PacketCapture.Plural, cancellationToken: cancellationToken);
        return ([.. list.Items], list.Metadata.ResourceVersion);
    }

    private async IAsyncEnumerable<(WatchEventType, PacketCapture)> WatchCapturesAsync(string resourceVersion, Action<Exception> onError,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var events = kubernetes.CustomObjects.WatchListClusterCustomObjectAsync(PacketCapture.Group, PacketCapture.Version, PacketCapture.Plural,
            allowWatchBookmarks: true, resourceVersion: resourceVersion, timeoutSeconds: 300, onError: onError, cancellationToken: cancellationToken);
        await foreach (var (type, raw) in events.WithCancellation(cancellationToken))
        {
            var json = raw is JsonElement element ? element.GetRawText() : KubernetesJson.Serialize(raw);
            yield return (type, KubernetesJson.Deserialize<PacketCapture>(json));
        }
    }
}
