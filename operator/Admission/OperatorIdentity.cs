using k8s;
using k8s.Models;
using Microsoft.Extensions.Options;

namespace KubeCapture.Operator.Admission;

/// <summary>
/// Who the operator is to kube-apiserver: <c>Admission:OperatorUsername</c> (the chart sets its
/// ServiceAccount), else what kube-apiserver says of the operator's own credentials (a
/// SelfSubjectReview, asked once and kept; asked again after a failure). The guard webhook lets only
/// this user remove the capture finalizer.
/// </summary>
public sealed class OperatorIdentity(IOptions<AdmissionOptions> options, IServiceProvider services, ILogger<OperatorIdentity> logger)
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private string? _username = options.Value.OperatorUsername is { Length: > 0 } configured ? configured : null;

    /// <summary>The operator's username, or null when it cannot be known now (then nobody may remove the finalizer: fail closed).</summary>
    public async Task<string?> UsernameAsync(CancellationToken cancellationToken)
    {
        if (_username is { } known)
        {
            return known;
        }

        await _gate.WaitAsync(cancellationToken);
        try
        {
            if (_username is null && services.GetService<IKubernetes>() is { } kubernetes)
            {
                var review = await kubernetes.AuthenticationV1.CreateSelfSubjectReviewAsync(new V1SelfSubjectReview(), cancellationToken: cancellationToken);
                _username = review.Status?.UserInfo?.Username is { Length: > 0 } name ? name : null;
                logger.LogInformation("the operator is {User} to kube-apiserver: only it may remove the capture finalizer", _username);
            }

            return _username;
        }
        catch (Exception e) when (e is k8s.Autorest.HttpOperationException or HttpRequestException)
        {
            logger.LogWarning("cannot ask kube-apiserver who the operator is ({Error}); set Admission:OperatorUsername. Until then no one may remove the capture finalizer", e.Message);
            return null;
        }
        finally
        {
            _gate.Release();
        }
    }
}
