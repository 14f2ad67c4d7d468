using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using KubeCapture.Contracts;
using KubeCapture.Operator.Certificates;
using KubeCapture.Operator.Ingest;

namespace KubeCapture.Operator.Subresources;

/// <summary>
/// A live follow that reached a replica other than the one holding the stream (the Service chose it):
/// the holder, named by the target's upload Lease (<see cref="UploadOwnership.HolderAsync"/>), is asked
/// for the stream over HTTPS at the relay URL the Lease carries (its extension API listener), its
/// certificate verified against the operator's CA (any replica's serving certificate; the pod address is
/// not among its names), with the <see cref="RelayCredential"/>; whole records are passed on
/// (<see cref="WholeRecordCopy"/>). The holder keeps the follower's memory bound and cuts it off when
/// it falls behind, as for a local follower: this side holds one record at most.
///
/// A holder that cannot be reached or no longer holds the stream before a byte was passed on is looked
/// up again every <see cref="PollPeriod"/> (its Lease moves when it died); one that renews its Lease
/// all the while but has not been reached for a lease duration is alive and cut off from this replica
/// (a partition): the follow is refused 503 saying so, rather than left waiting. One that goes away mid-relay
/// ends the follower's stream at its last whole record, broken as kube-apiserver's request timeout
/// breaks it, so <c>kubectl capture follow</c> follows again and lands on the replica holding it then.
/// </summary>
public sealed class StreamRelay(UploadOwnership ownership, RelayCredential credential, ServingCertificateSource certificates, IHostApplicationLifetime lifetime, ILogger<StreamRelay> logger) : IDisposable
{
    public const string Path = "/relay/v1/follow";
    public const string SnapshotPath = "/relay/v1/snapshot";
    public static readonly TimeSpan PollPeriod = TimeSpan.FromSeconds(1);
    private HttpClient? http;

    /// <summary>The replica this one is (as in the upload Leases).</summary>
    public string Identity => ownership.Options.Identity;

    /// <summary>The holder of the target's stream when it is another replica, else null (this one, or none).</summary>
    /// <remarks>A follower polling every <see cref="PollPeriod"/> passes it as <paramref name="maxAge"/>: the followers of
    /// one target waiting here share one Lease read per period (<see cref="UploadOwnership.HolderAsync(CaptureIdentity, TimeSpan, CancellationToken)"/>).</remarks>
    public async Task<StreamHolder?> ElsewhereAsync(CaptureIdentity target, CancellationToken cancellationToken, TimeSpan maxAge = default) =>
        await ownership.HolderAsync(target, maxAge, cancellationToken) is { } holder && holder.Identity != Identity ? holder : null;

    /// <summary>
    /// Relays the stream while another replica holds it. <see cref="RelayOutcome.NotElsewhere"/> when
    /// this one holds it or none does (nothing was written then: follow locally);
    /// <see cref="RelayOutcome.Served"/> once the follower's request was answered (ended, broken or refused).
    /// </summary>
    public async Task<RelayOutcome> RelayAsync(HttpContext context, CaptureIdentity target, RemoteUser user, CancellationToken until)
    {
        var follower = user.ToString();
        (string Holder, string? Version, long Since)? unreachable = null; // the holder not reached since then, at that version of its Lease
        while (true)
        {
            StreamHolder? holder;
            try
            {
                holder = await ElsewhereAsync(target, until, PollPeriod);
            }
            catch (Exception e) when (context.Response.HasStarted && e is k8s.Autorest.HttpOperationException or HttpRequestException)
            {
                // Answered already (a follow that moved here): the API's error cannot be a Status now; ask again.
                logger.LogWarning("follow of {Namespace}/{Capture} pod {Pod} by {User}: reading the upload Lease failed ({Error}); looking again in {Period} s",
                    target.Namespace, target.CaptureName, target.Pod, follower, e.Message, PollPeriod.TotalSeconds);
                await Task.Delay(PollPeriod, until);
                continue;
            }

            if (holder is null)
            {
                return RelayOutcome.NotElsewhere;
            }

            if (holder.RelayUrl is not { Length: > 0 } url)
            {
                logger.LogWarning("follow of {Namespace}/{Capture} pod {Pod} by {User}: replica {Holder} holds the stream and names no relay URL in its upload Lease (it serves no extension API)",
                    target.Namespace, target.CaptureName, target.Pod, follower, holder.Identity);
                return await RefuseAsync(context, target, 503, "ServiceUnavailable", $"replica {holder.Identity} holds the live stream of pod {target.Pod} and serves no relay (Subresources:Enabled off there); download the pcap when the capture ends");
            }

            using var request = new HttpRequestMessage(HttpMethod.Get, RequestUri(url, target, follower)) { Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionOrLower };
            request.Headers.TryAddWithoutValidation("Authorization", credential.For(target, follower, Identity));
            HttpResponseMessage response;
            try
            {
                response = await Client().SendAsync(request, HttpCompletionOption.ResponseHeadersRead, until);
            }
            catch (Exception e) when (Unreachable(e, until))
            {
                // A holder that died leaves its Lease unrenewed until the agent resumed elsewhere: wait for it to move.
                // One that renews its Lease all the while is alive and cut off from this replica: say so rather than wait.
                if (unreachable is not { } first || first.Holder != holder.Identity)
                {
                    unreachable = (holder.Identity, holder.Version, System.Diagnostics.Stopwatch.GetTimestamp());
                }
                else if (first.Version != holder.Version && System.Diagnostics.Stopwatch.GetElapsedTime(first.Since) is var cutOff && cutOff >= ownership.Options.LeaseDuration)
                {
                    logger.LogWarning("follow of {Namespace}/{Capture} pod {Pod} by {User}: replica {Holder} holds the stream and renews its upload Lease, but has not been reached at {Url} for {Seconds:0} s ({Error}): refused, the replicas are cut off from each other",
                        target.Namespace, target.CaptureName, target.Pod, follower, holder.Identity, url, cutOff.TotalSeconds, e.Message);
                    return await RefuseAsync(context, target, 503, "ServiceUnavailable",
                        $"replica {holder.Identity} holds the live stream of pod {target.Pod} and renews its upload Lease, but replica {Identity} has not reached it for {cutOff.TotalSeconds:0} s: " +
                        "the operator's replicas are cut off from each other (a network partition?); follow again later, or download the pcap when the capture ends");
                }

                logger.LogWarning("follow of {Namespace}/{Capture} pod {Pod} by {User}: replica {Holder} holds the stream but cannot be reached at {Url} ({Error}); looking again in {Period} s",
                    target.Namespace, target.CaptureName, target.Pod, follower, holder.Identity, url, e.Message, PollPeriod.TotalSeconds);
                await Task.Delay(PollPeriod, until);
                continue;
            }

            unreachable = null;

            using (response)
            {
                if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
                {
                    var why = await response.Content.ReadAsStringAsync(until);
                    logger.LogError("follow of {Namespace}/{Capture} pod {Pod} by {User}: replica {Holder} refused the relay ({Status}: {Why}); do the replicas share the ingest token key Secret?",
                        target.Namespace, target.CaptureName, target.Pod, follower, holder.Identity, (int)response.StatusCode, why);
                    return await RefuseAsync(context, target, 503, "ServiceUnavailable", $"replica {holder.Identity} holds the live stream of pod {target.Pod} and refused to relay it to replica {Identity}: see the operator's log");
                }

                if (response.StatusCode != HttpStatusCode.OK)
                {
                    // It let go of the stream meanwhile (ended, or handed over): look again.
                    await Task.Delay(PollPeriod, until);
                    continue;
                }

                if (await CopyAsync(context, target, follower, holder, response, until) is { } outcome)
                {
                    return outcome;
                }
            }
        }
    }

    /// <summary>Passes the holder's stream on; null when it broke before a byte reached the follower (look again).</summary>
    /// <summary>
    /// A snapshot by hand of a recording whose stream another replica holds: that replica is asked
    /// (HTTPS, the replica credential for a snapshot) to pass it to its agent. Null when no other
    /// replica holds the stream; else whether it was asked, and if not, why (in the holder's words).
    /// </summary>
    public async Task<(bool Asked, string? Problem)?> AskSnapshotAsync(CaptureIdentity target, string requester, string? alert, CancellationToken cancellationToken)
    {
        if (await ElsewhereAsync(target, cancellationToken) is not { } holder)
        {
            return null;
        }

        if (holder.RelayUrl is not { Length: > 0 } url)
        {
            return (false, $"replica {holder.Identity} holds the recording's stream of pod {target.Pod} and serves no relay (Subresources:Enabled off there): it cannot be asked for a snapshot");
        }

        var uri = RequestUri(url + SnapshotPath, target, "requester", requester) + (alert is null ? "" : $"&alert={Uri.EscapeDataString(alert)}");
        using var request = new HttpRequestMessage(HttpMethod.Post, uri) { Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionOrLower };
        request.Headers.TryAddWithoutValidation("Authorization", credential.For(target, RelayCredential.Asker(requester, alert), Identity, RelayPurpose.Snapshot));
        try
        {
            using var response = await Client().SendAsync(request, cancellationToken);
            if (response.StatusCode == HttpStatusCode.Accepted)
            {
                logger.LogInformation("snapshot of {Namespace}/{Capture} pod {Pod} by {User}: asked of replica {Holder}, which holds the recording's stream",
                    target.Namespace, target.CaptureName, target.Pod, requester, holder.Identity);
                return (true, null);
            }

            var answer = await response.Content.ReadAsStringAsync(cancellationToken);
            logger.LogWarning("snapshot of {Namespace}/{Capture} pod {Pod} by {User}: replica {Holder} answered {Status}: {Answer}",
                target.Namespace, target.CaptureName, target.Pod, requester, holder.Identity, (int)response.StatusCode, answer);
            return (false, response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden
                ? $"replica {holder.Identity} holds the recording's stream of pod {target.Pod} and refused this replica's request: see the operator's log"
                : $"replica {holder.Identity} holds the recording's stream of pod {target.Pod} and could not take the snapshot: {SubresourcesApi.MessageOf(answer)}");
        }
        catch (Exception e) when (Unreachable(e, cancellationToken))
        {
            logger.LogWarning("snapshot of {Namespace}/{Capture} pod {Pod} by {User}: replica {Holder} holds the recording's stream but cannot be reached at {Url} ({Error})",
                target.Namespace, target.CaptureName, target.Pod, requester, holder.Identity, url, e.Message);
            return (false, $"replica {holder.Identity} holds the recording's stream of pod {target.Pod} but cannot be reached from this replica; try again");
        }
    }

    private async Task<RelayOutcome?> CopyAsync(HttpContext context, CaptureIdentity target, string follower, StreamHolder holder, HttpResponseMessage response, CancellationToken until)
    {
        if (!context.Response.HasStarted)
        {
            context.Response.ContentType = ExtensionApi.PcapContentType;
            context.Response.Headers.CacheControl = "no-store";
            await context.Response.StartAsync(until);
            await context.Response.Body.FlushAsync(until);
        }

        logger.LogInformation("follow of {Namespace}/{Capture} pod {Pod} by {User}: relaying the live stream from replica {Holder}",
            target.Namespace, target.CaptureName, target.Pod, follower, holder.Identity);
        var copy = new WholeRecordCopy();
        try
        {
            await using var body = await response.Content.ReadAsStreamAsync(until);
            if (await copy.CopyAsync(body, context.Response.Body, until))
            {
                logger.LogInformation("follow of {Namespace}/{Capture} pod {Pod} by {User} ended with the relayed stream of replica {Holder} ({Bytes} bytes)",
                    target.Namespace, target.CaptureName, target.Pod, follower, holder.Identity, copy.Written);
                return RelayOutcome.Served;
            }

            throw new IOException("the stream ended inside a record");
        }
        catch (Exception e) when (context.RequestAborted.IsCancellationRequested && e is OperationCanceledException or IOException)
        {
            logger.LogInformation("follow of {Namespace}/{Capture} pod {Pod} by {User} ended after {Bytes} bytes relayed from replica {Holder}: the follower went away",
                target.Namespace, target.CaptureName, target.Pod, follower, copy.Written, holder.Identity);
            return RelayOutcome.Served;
        }
        catch (OperationCanceledException) when (lifetime.ApplicationStopping.IsCancellationRequested)
        {
            logger.LogInformation("follow of {Namespace}/{Capture} pod {Pod} by {User} after {Bytes} bytes relayed from replica {Holder}: {Why}",
                target.Namespace, target.CaptureName, target.Pod, follower, copy.Written, holder.Identity, CaptureDownloads.ShuttingDown);
            context.Abort();
            return RelayOutcome.Served;
        }
        catch (OperationCanceledException) when (until.IsCancellationRequested)
        {
            logger.LogWarning("follow of {Namespace}/{Capture} pod {Pod} by {User} ended after {Bytes} bytes relayed from replica {Holder}: the capture ran past its duration and grace without ending",
                target.Namespace, target.CaptureName, target.Pod, follower, copy.Written, holder.Identity);
            return RelayOutcome.Served;
        }
        catch (Exception e) when (e is IOException or HttpRequestException or InvalidDataException)
        {
            if (copy.Written == 0)
            {
                return null;
            }

            logger.LogWarning("follow of {Namespace}/{Capture} pod {Pod} by {User}: replica {Holder} went away mid-relay after {Bytes} bytes ({Error}); the follower's stream is broken off at its last whole record and kubectl capture follow follows again",
                target.Namespace, target.CaptureName, target.Pod, follower, holder.Identity, copy.Written, e.Message);
            context.Abort();
            return RelayOutcome.Served;
        }
    }

    /// <summary>The holder was not reached: refused, reset, or silent past the connect timeout (a partition drops the SYN: no error, only the timeout).</summary>
    private static bool Unreachable(Exception e, CancellationToken cancellationToken) =>
        e is HttpRequestException || (e is TaskCanceledException { InnerException: TimeoutException } && !cancellationToken.IsCancellationRequested);

    private async Task<RelayOutcome> RefuseAsync(HttpContext context, CaptureIdentity target, int code, string reason, string message)
    {
        if (context.Response.HasStarted)
        {
            context.Abort(); // nothing was written: the follower follows again
        }
        else
        {
            await SubresourcesApi.WriteStatusAsync(context, code, reason, message, target.CaptureName);
        }

        return RelayOutcome.Served;
    }

    private Uri RequestUri(string url, CaptureIdentity target, string follower) => RequestUri(url + Path, target, "follower", follower);

    private Uri RequestUri(string endpoint, CaptureIdentity target, string userField, string user) => new(
        $"{endpoint}?uid={Uri.EscapeDataString(target.CaptureUid)}&namespace={Uri.EscapeDataString(target.Namespace)}&name={Uri.EscapeDataString(target.CaptureName)}" +
        $"&pod={Uri.EscapeDataString(target.Pod)}&{userField}={Uri.EscapeDataString(user)}&replica={Uri.EscapeDataString(Identity)}");

    private HttpClient Client() => http ??= new HttpClient(new SocketsHttpHandler
    {
        SslOptions = new SslClientAuthenticationOptions { RemoteCertificateValidationCallback = IsReplica },
        ConnectTimeout = TimeSpan.FromSeconds(5),
        PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
    })
    { Timeout = Timeout.InfiniteTimeSpan };

    /// <summary>
    /// The peer's certificate is signed by the operator's CA (the current one or the previous one): it
    /// is a replica's serving certificate. Its names are not checked (they are the Services', not the
    /// pod address the relay dials).
    /// </summary>
    private bool IsReplica(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (certificate is null || certificates.AuthorityPem is not { Length: > 0 } pem || errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable))
        {
            return false;
        }

        var authorities = new X509Certificate2Collection();
        authorities.ImportFromPem(pem);
        using var presented = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.CustomTrustStore.AddRange(authorities);
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        custom.ChainPolicy.DisableCertificateDownloads = true;
        custom.ChainPolicy.ApplicationPolicy.Add(new System.Security.Cryptography.Oid("1.3.6.1.5.5.7.3.1")); // serverAuth
        var verified = custom.Build(presented);
        foreach (var authority in authorities)
        {
            authority.Dispose();
        }

        return verified;
    }

    public void Dispose() => http?.Dispose();
}

/// <summary>What <see cref="StreamRelay.RelayAsync"/> did.</summary>
public enum RelayOutcome
{
    /// <summary>No other replica holds the stream: nothing was written, follow here.</summary>
    NotElsewhere,

    /// <summary>The follower's request was answered.</summary>
    Served,
}
