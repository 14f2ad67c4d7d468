using System.Net;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace KubeCapture.Operator.Configuration;

/// <summary>
/// A Secret the operator creates when it is missing (never the chart, so a render or <c>helm upgrade</c>
/// never replaces it): labelled as the operator's; of replicas racing to create it, the first one's wins
/// and the others read it.
/// </summary>
public static class OperatorOwnedSecret
{
    public static async Task<V1Secret> CreateOrReadAsync(IKubernetes kubernetes, string name, string @namespace, IDictionary<string, byte[]> data, CancellationToken cancellationToken)
    {
        try
        {
            return await kubernetes.CoreV1.CreateNamespacedSecretAsync(new V1Secret
            {
                Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = @namespace, Labels = new Dictionary<string, string> { ["app.kubernetes.io/managed-by"] = "kubecapture-operator" } },
                Type = "Opaque",
                Data = data,
            }, @namespace, cancellationToken: cancellationToken);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict)
        {
            // Another replica created it first: theirs.
            return await kubernetes.CoreV1.ReadNamespacedSecretAsync(name, @namespace, cancellationToken: cancellationToken);
        }
    }
}
