using System.Net;
using System.Security.Cryptography;
using System.Text;
using k8s;
using k8s.Autorest;
using k8s.Models;
using KubeCapture.Contracts.Resources;

namespace KubeCapture.Operator.Reconciliation;

/// <summary>
/// The Secret that hands a capture container its upload token: the container's env
/// <c>KUBECAPTURE_TOKEN</c> refers to it (<c>valueFrom.secretKeyRef</c>) and the kubelet reads it when
/// it starts the container, so the token is never a literal in the pod spec. Whoever may read pods
/// but not Secrets in the namespace (the built-in <c>view</c> role) never sees it. One per target, in
/// the capture's namespace, immutable, owned by the PacketCapture: deleting the capture deletes it
/// (garbage collection).
/// </summary>
public static class UploadTokenSecret
{
    /// <summary>The Secret's key holding the token.</summary>
    public const string Key = "token";

    public const string CaptureUidLabel = "kubecapture.io/capture-uid";

    /// <summary>
    /// <c>kubecapture-UID-POD</c>, deterministic (a retry or a restart finds it instead of making
    /// another); a pod name too long for that is replaced by a hash of it.
    /// </summary>
    public static string NameFor(string captureUid, string pod)
    {
        var name = $"{EphemeralContainerSpec.NamePrefix}{captureUid}-{pod}";
        return name.Length <= 253
            ? name
            : $"{EphemeralContainerSpec.NamePrefix}{captureUid}-{Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(pod)))[..32]}";
    }

    public static V1Secret Build(PacketCapture capture, string pod, string token) => new()
    {
        Metadata = new V1ObjectMeta
        {
            Name = NameFor(capture.Metadata.Uid, pod),
            NamespaceProperty = capture.Metadata.NamespaceProperty,
            Labels = new Dictionary<string, string>
            {
                ["app.kubernetes.io/managed-by"] = "kubecapture",
                [CaptureUidLabel] = capture.Metadata.Uid,
            },
            Annotations = new Dictionary<string, string>
            {
                ["kubecapture.io/purpose"] = $"the upload token of the capture agent of PacketCapture {capture.Metadata.Name} in pod {pod}",
            },
            OwnerReferences =
            [
                new V1OwnerReference
                {
                    ApiVersion = PacketCapture.GroupVersion,
                    Kind = PacketCapture.KindName,
                    Name = capture.Metadata.Name,
                    Uid = capture.Metadata.Uid,
                    Controller = true,
                },
            ],
        },
        Type = "Opaque",
        Immutable = true,
        StringData = new Dictionary<string, string> { [Key] = token },
    };

    /// <summary>
    /// Creates the target's Secret; one already there (an earlier reconcile, before a crash) is left as
    /// it is: the token is the same, derived from the target. The operator may create Secrets but not
    /// read them, so it never reads one back.
    /// </summary>
    public static async Task EnsureAsync(IKubernetes kubernetes, PacketCapture capture, string pod, string token, CancellationToken cancellationToken)
    {
        try
        {
            await kubernetes.CoreV1.CreateNamespacedSecretAsync(Build(capture, pod, token), capture.Metadata.NamespaceProperty, cancellationToken: cancellationToken);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict)
        {
            // AlreadyExists: made by an earlier reconcile of this capture.
        }
    }
}
