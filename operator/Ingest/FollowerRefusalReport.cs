using System.Net;
using System.Threading.Channels;
using k8s;
using k8s.Autorest;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Events;
using KubeCapture.Operator.LeaderElection;

namespace KubeCapture.Operator.Ingest;

/// <summary>
/// Every replica ingests, but only the leader reconciles: an upload refused by a replica that does not
/// lead (a forged stream, a second session) would stay in that replica's memory. This writes them into
/// the capture's status itself, as the reconciler does (Reconciliation/UploadRefusalsInStatus: the target's
/// <c>refusedUploads</c>, <c>refusedSessions</c>, <c>lastRefusal</c>, then the Warning Event): a status
/// PUT on the resourceVersion read, so it never overwrites the leader's write nor is overwritten by it
/// (a conflict reads again). The refusals are taken from the address book before the write and put back
/// if it fails, so the leader never counts them too. While this replica leads, its reconciler surfaces
/// them and this does nothing. Reads the API only when an upload was refused.
/// </summary>
public sealed class FollowerRefusalReport(IKubernetes kubernetes, AgentAddressBook addresses, LeaderGate leader, CaptureEvents events, ILogger<FollowerRefusalReport> logger) : BackgroundService
{
    /// <summary>Refusals come in bursts (an agent retrying): they are written at most this often per target.</summary>
    public static readonly TimeSpan Batch = TimeSpan.FromSeconds(1);

    /// <summary>How often refusals that could not be written yet are tried again.</summary>
    public static readonly TimeSpan RetryPeriod = TimeSpan.FromSeconds(5);

    private const int Attempts = 5;

    private readonly Channel<bool> _wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        void OnRefused(CaptureIdentity target) => _wake.Writer.TryWrite(true);
        addresses.Refused += OnRefused;
        try
        {
            while (true)
            {
                // Woken by a refusal; while some stay pending (a target not in the status yet, a failed write, a
                // leadership just lost with some unsurfaced), looked at again every RetryPeriod.
                using (var retry = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken))
                {
                    if (addresses.Pending().Count > 0)
                    {
                        retry.CancelAfter(RetryPeriod);
                    }

                    try
                    {
                        await _wake.Reader.WaitToReadAsync(retry.Token);
                    }
                    catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested)
                    {
                    }
                }

                _wake.Reader.TryRead(out _);
                await Task.Delay(Batch, stoppingToken);
                foreach (var target in leader.IsLeading ? [] : addresses.Pending())
                {
                    await ReportAsync(target, stoppingToken);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            addresses.Refused -= OnRefused;
        }
    }

    /// <summary>Writes the target's pending refusals into its capture's status, then announces them; on failure they stay pending.</summary>
    public async Task ReportAsync(CaptureIdentity target, CancellationToken cancellationToken)
    {
        var refusals = addresses.Take(target);
        if (refusals.Count == 0)
        {
            return;
        }

        try
        {
            for (var attempt = 1; ; attempt++)
            {
                var capture = await kubernetes.CustomObjects.GetNamespacedCustomObjectAsync<PacketCapture>(
                    PacketCapture.Group, PacketCapture.Version, target.Namespace, PacketCapture.Plural, target.CaptureName, cancellationToken);
                if (capture.Metadata.Uid != target.CaptureUid)
                {
                    logger.LogWarning("{Namespace}/{Capture} pod {Pod}: {Count} upload(s) refused for a capture that is gone: {Message}", target.Namespace, target.CaptureName, target.Pod, refusals.Count, refusals.LastMessage);
                    return;
                }

                if (capture.Status?.Targets.FirstOrDefault(t => t.Pod == target.Pod) is not { } status)
                {
                    // The leader has not written the target yet: pending again, tried after RetryPeriod.
                    addresses.PutBack(target, refusals);
                    return;
                }

                refusals.AddTo(status);
                try
                {
                    var written = await kubernetes.CustomObjects.ReplaceNamespacedCustomObjectStatusAsync<PacketCapture>(
                        capture, PacketCapture.Group, PacketCapture.Version, target.Namespace, PacketCapture.Plural, target.CaptureName, cancellationToken: cancellationToken);
                    logger.LogWarning("{Namespace}/{Capture} pod {Pod}: {Count} upload(s) refused by this replica (it does not lead): {Message}", target.Namespace, target.CaptureName, target.Pod, refusals.Count, refusals.LastMessage);
                    await events.OnCaptureAsync(written, "Warning", "UploadRefused", refusals.EventMessage(target.Pod), cancellationToken);
                    return;
                }
                catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict && attempt < Attempts)
                {
                    // The leader (or another replica) wrote the status since it was read: read it again.
                }
            }
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            logger.LogWarning("{Namespace}/{Capture} pod {Pod}: {Count} upload(s) refused for a capture that is gone: {Message}", target.Namespace, target.CaptureName, target.Pod, refusals.Count, refusals.LastMessage);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            addresses.PutBack(target, refusals);
            logger.LogWarning("{Namespace}/{Capture} pod {Pod}: could not write {Count} refused upload(s) into the status ({Error}); kept for the next try", target.Namespace, target.CaptureName, target.Pod, refusals.Count, e.Message);
        }
    }
}
