using k8s;
using k8s.Models;
using KubeCapture.Contracts;

namespace KubeCapture.Operator.Subresources;

/// <summary>
/// Asks kube-apiserver whether the user the front proxy named may <c>get</c> (or <c>create</c>) the subresource (a
/// SubjectAccessReview): kube-apiserver already checked, and this makes the operator refuse a
/// request from anything that merely holds the front-proxy certificate without RBAC behind it. The
/// review names the user as kube-apiserver authenticated it: name, UID, groups and extra.
/// </summary>
public sealed class AccessReview(IKubernetes kubernetes)
{
    public Task<(bool Allowed, string Reason)> MayGetAsync(RemoteUser user, string ns, string name, string subresource, CancellationToken cancellationToken) =>
        MayAsync(user, ns, name, subresource, "get", cancellationToken);

    /// <summary>Whether the user may <paramref name="verb"/> the subresource (<c>create</c>: a snapshot by hand).</summary>
    public async Task<(bool Allowed, string Reason)> MayAsync(RemoteUser user, string ns, string name, string subresource, string verb, CancellationToken cancellationToken)
    {
        var review = await kubernetes.AuthorizationV1.CreateSubjectAccessReviewAsync(new V1SubjectAccessReview
        {
            Spec = new V1SubjectAccessReviewSpec
            {
                User = user.Name,
                Uid = user.Uid,
                Groups = [.. user.Groups],
                Extra = user.Extra.ToDictionary(e => e.Key, e => (IList<string>)[.. e.Value]),
                ResourceAttributes = new V1ResourceAttributes
                {
                    Group = ExtensionApi.Group,
                    Version = ExtensionApi.Version,
                    Resource = ExtensionApi.Resource,
                    Subresource = subresource,
                    Verb = verb,
                    NamespaceProperty = ns,
                    Name = name,
                },
            },
        }, cancellationToken: cancellationToken);
        return (review.Status?.Allowed == true, review.Status?.Reason ?? review.Status?.EvaluationError ?? "");
    }
}
