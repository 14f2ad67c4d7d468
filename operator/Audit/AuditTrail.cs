using System.Net;
using k8s;
using k8s.Autorest;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Admission;
using KubeCapture.Operator.Events;
using KubeCapture.Operator.Provenance;
using KubeCapture.Operator.Storage;

namespace KubeCapture.Operator.Audit;

/// <summary>
/// The audit log: one JSON line per lifecycle event (<see cref="AuditRecord"/>) on stdout, as
/// Kubernetes components log, and the matching Kubernetes Event on the PacketCapture while it exists
/// (through the process's one <see cref="CaptureEvents"/> recorder, when there is a Kubernetes client).
/// </summary>
public sealed class AuditTrail(TextWriter output, IKubernetes? kubernetes, CaptureEvents? events, TimeProvider time, ILoggerFactory loggers) : ICaptureAuditLog
{
    /// <summary>Its 'contested' line carries the Event of a contested end.</summary>
    public bool AnnouncesContestedEnds => true;

    private readonly Lock _gate = new();

    public async Task RecordAsync(PacketCapture capture, Transition transition, CancellationToken cancellationToken)
    {
        Write(new AuditRecord
        {
            Time = Now(),
            Event = transition.Event,
            Namespace = capture.Metadata.NamespaceProperty,
            Capture = capture.Metadata.Name,
            CaptureUid = capture.Metadata.Uid,
            Pod = transition.Pod,
            Requester = RequesterStamp.Read(capture.Metadata),
            CaptureReason = capture.Spec.Reason,
            EventReason = transition.EventReason,
            Message = transition.Message,
            Artifact = transition.Artifact,
            Actor = transition.Actor,
        });
        if (events is not null && transition.Announce)
        {
            await events.OnCaptureAsync(capture, transition.EventType, transition.EventReason, transition.Message, cancellationToken);
        }
    }

    /// <summary>Records every lifecycle event the status written for <paramref name="before"/> shows.</summary>
    public async Task RecordTransitionsAsync(PacketCapture before, PacketCaptureStatus written, CancellationToken cancellationToken)
    {
        foreach (var transition in LifecycleTransitions.Between(before, written))
        {
            await RecordAsync(before, transition, cancellationToken);
        }
    }

    /// <summary>
    /// Someone other than the operator removed the capture finalizer, allowed by the break-glass
    /// annotation (the guard webhook tells, from kube-apiserver's admission request): the audit line,
    /// and a Warning Event on the capture.
    /// </summary>
    public Task RecordBreakGlassAsync(BrokenGlass broken, CancellationToken cancellationToken)
    {
        var capture = k8s.KubernetesJson.Deserialize<PacketCapture>(broken.Capture.ToJsonString());
        var message = $"{broken.Actor} removed the finalizer {Finalizer.CaptureFinalizer.Name} with the break-glass annotation ({broken.Why}): " +
            (capture.Metadata.DeletionTimestamp is null
                ? "the operator will not put it back; deleting the capture now neither waits for its agents nor deletes what they store"
                : "the capture is deleted without waiting for its agents; what they still store is kept until its retention ends");
        return RecordAsync(capture, new Transition(AuditEvent.BreakGlass, "Warning", "BreakGlass", message, Actor: broken.Actor), cancellationToken);
    }

    /// <summary>Retention deleted a stored pcap: the audit line, and an Event when its PacketCapture still exists.</summary>
    public async Task RecordExpiredAsync(StoredCaptureManifest stored, CancellationToken cancellationToken)
    {
        var transition = new Transition(AuditEvent.Expired, "Normal", "Expired", $"pod {stored.Pod}: retention ended at {stored.ExpiresAt:O}: deleted {stored.Uri} and its manifest",
            stored.Pod, new AuditArtifact { Uri = stored.Uri, Size = stored.Size, Sha256 = stored.Sha256, VersionId = stored.VersionId });
        var capture = await FindAsync(stored.Namespace, stored.CaptureName, stored.CaptureUid, cancellationToken);
        if (capture is not null)
        {
            await RecordAsync(capture, transition, cancellationToken);
            return;
        }

        Write(new AuditRecord
        {
            Time = Now(),
            Event = transition.Event,
            Namespace = stored.Namespace,
            Capture = stored.CaptureName,
            CaptureUid = stored.CaptureUid,
            Pod = stored.Pod,
            Requester = stored.Requester,
            CaptureReason = stored.Reason,
            EventReason = transition.EventReason,
            Message = transition.Message,
            Artifact = transition.Artifact,
        });
    }

    public void Write(AuditRecord record)
    {
        var line = record.ToJsonLine();
        lock (_gate)
        {
            output.WriteLine(line);
            output.Flush();
        }
    }

    private string Now() => time.GetUtcNow().UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", System.Globalization.CultureInfo.InvariantCulture);

    private async Task<PacketCapture?> FindAsync(string ns, string name, string uid, CancellationToken cancellationToken)
    {
        if (kubernetes is null)
        {
            return null;
        }

        try
        {
            var capture = await kubernetes.CustomObjects.GetNamespacedCustomObjectAsync<PacketCapture>(PacketCapture.Group, PacketCapture.Version, ns, PacketCapture.Plural, name, cancellationToken);
            return capture.Metadata.Uid == uid ? capture : null;
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
        catch (Exception e) when (e is HttpOperationException or HttpRequestException)
        {
            loggers.CreateLogger<AuditTrail>().LogWarning("could not look up PacketCapture {Namespace}/{Name} for its Expired event: {Error}", ns, name, e.Message);
            return null;
        }
    }
}
