using System.Net;
using k8s;
using k8s.Autorest;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Resources;

namespace KubeCapture.Operator.Ingest;

/// <summary>
/// The binding of a target to its pod (<see cref="IAgentAddresses"/>) read from the API when a stream
/// opens: every replica ingests, but only the leader reconciles and tells its own address book, so a
/// replica reads the PacketCapture and the pod itself (two reads per Open, none per chunk). The
/// capture gone or of another uid, or its target ended: closed; the pod gone: unbound (its address may
/// belong to another pod). A read that fails leaves the book as it was (the check then says retry).
/// </summary>
public sealed class TargetBindingLookup(IKubernetes kubernetes, AgentAddressBook addresses, ILogger<TargetBindingLookup> logger)
{
    public async Task RefreshAsync(CaptureIdentity target, CancellationToken cancellationToken)
    {
        try
        {
            var capture = await ReadAsync(() => kubernetes.CustomObjects.GetNamespacedCustomObjectAsync<PacketCapture>(
                PacketCapture.Group, PacketCapture.Version, target.Namespace, PacketCapture.Plural, target.CaptureName, cancellationToken));
            if (capture is null || capture.Metadata.Uid != target.CaptureUid)
            {
                addresses.Close(target, "the PacketCapture is gone");
                return;
            }

            if (capture.Status?.Targets?.FirstOrDefault(t => t.Pod == target.Pod) is { } status && TargetState.IsTerminal(status.State))
            {
                addresses.Close(target, status.State == TargetState.Succeeded ? "its pcap is stored" : $"{status.State}: {status.Reason}");
                return;
            }

            var pod = await ReadAsync(() => kubernetes.CoreV1.ReadNamespacedPodAsync(target.Pod, target.Namespace, cancellationToken: cancellationToken));
            if (pod is null)
            {
                addresses.Unbind(target);
                return;
            }

            addresses.Expect(target, UploadTerms.Of(capture, pod));
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            logger.LogWarning("{Namespace}/{Capture} pod {Pod}: could not read the capture and its pod to bind the upload ({Error})", target.Namespace, target.CaptureName, target.Pod, e.Message);
        }
    }

    private static async Task<T?> ReadAsync<T>(Func<Task<T>> read)
        where T : class
    {
        try
        {
            return await read();
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
    }
}
