using System.Net;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace KubeCapture.Operator.Configuration;

/// <summary>
/// A Secret of the operator's namespace whose entries the operator uses as they are now: read at
/// start, created when missing when the operator owns it (<see cref="SecretContent.Creation"/>,
/// <see cref="OperatorOwnedSecret"/>), then followed with one watch by name (list and watch with
/// <c>fieldSelector=metadata.name=…</c>), so a change takes effect at once and an idle operator reads
/// nothing. A Secret that is not usable (or missing, when the operator does not create it) is logged
/// as an error naming it and the fix, leaves what is in use in use, and is followed until it is fixed;
/// the operator's own Secret deleted is written again with what is in use.
/// </summary>
public sealed class FollowedSecret(IKubernetes kubernetes, string @namespace, string name, SecretContent content, ILogger logger, TimeSpan? watchTimeout = null)
{
    /// <summary>How long kube-apiserver keeps one watch open before it ends it (the watch then goes on from the last version seen).</summary>
    public static readonly TimeSpan WatchTimeout = TimeSpan.FromMinutes(10);

    private TimeSpan Timeout => watchTimeout ?? WatchTimeout;

    public string Describe => $"Secret {@namespace}/{name}";

    /// <summary>Loads the Secret and follows it until <paramref name="cancellationToken"/>; what the API server fails is retried with a backoff.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var backoff = TimeSpan.FromMilliseconds(250);
        var (following, version, watching) = (false, (string?)null, DateTime.MinValue);
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                if (!following)
                {
                    var secret = await ReadOrCreateAsync(cancellationToken);
                    if (secret is not null)
                    {
                        UseOrLog(secret);
                    }

                    (following, version) = (true, secret?.Metadata.ResourceVersion);
                }

                // A watch the server ended (its timeout) goes on from the last version seen (bookmarks keep it
                // recent), with no read: only a failure (a version too old, a watch RBAC does not grant) reads
                // the Secret again, after a backoff.
                watching = DateTime.UtcNow;
                version = await FollowAsync(version, cancellationToken);
                backoff = TimeSpan.FromMilliseconds(250);
            }
            catch (Exception e) when (following && e is HttpRequestException or IOException && DateTime.UtcNow - watching >= Timeout / 2)
            {
                // KubernetesClient ends a watch kube-apiserver closed at its timeout with a transport error: the same as an end.
                logger.LogDebug("{What} {Source}: the watch ended ({Error}); watching on from version {Version}", content.What, Describe, e.Message, version);
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                following = false;
                if (content.IsLoaded())
                {
                    logger.LogInformation("{What} {Source}: reading it again after {Error}", content.What, Describe, e.Message);
                }
                else
                {
                    logger.LogError("{What} {Source} is not loaded: {Error}; {WhileNotLoaded}", content.What, Describe, e.Message, content.WhileNotLoaded);
                }

                await Task.Delay(backoff, cancellationToken);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, TimeSpan.FromSeconds(30).Ticks));
            }
        }
    }

    /// <summary>
    /// Reads the Secret, or creates it when missing and the operator owns it, and uses its entries; throws
    /// <see cref="InvalidDataException"/> when they are not usable and <see cref="InvalidOperationException"/>
    /// when the Secret is missing and not the operator's to create.
    /// </summary>
    public async Task LoadAsync(CancellationToken cancellationToken)
    {
        var secret = await ReadOrCreateAsync(cancellationToken) ?? throw new InvalidOperationException($"{Describe} does not exist: {content.Missing}");
        Use(secret);
    }

    /// <summary>The Secret, created when missing and the operator owns it; null (an error logged) when missing and someone else's.</summary>
    private async Task<V1Secret?> ReadOrCreateAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await kubernetes.CoreV1.ReadNamespacedSecretAsync(name, @namespace, cancellationToken: cancellationToken);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound && content.Creation is { } creation)
        {
            var secret = await OperatorOwnedSecret.CreateOrReadAsync(kubernetes, name, @namespace, creation.NewEntries(), cancellationToken);
            logger.LogInformation("{What}: created {Source} {Created}", content.What, Describe, creation.Created);
            return secret;
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            LogMissing("does not exist");
            return null;
        }
    }

    /// <summary>
    /// Watches the Secret by name from <paramref name="resourceVersion"/> (null: from now, its current state
    /// first) until the server ends the watch; returns the last version seen (a change or a bookmark).
    /// </summary>
    private async Task<string?> FollowAsync(string? resourceVersion, CancellationToken cancellationToken)
    {
        var events = kubernetes.CoreV1.WatchListNamespacedSecretAsync(@namespace, fieldSelector: $"metadata.name={name}", allowWatchBookmarks: true,
            resourceVersion: resourceVersion, timeoutSeconds: (int)Timeout.TotalSeconds, cancellationToken: cancellationToken);
        await foreach (var (type, secret) in events)
        {
            resourceVersion = secret.Metadata?.ResourceVersion ?? resourceVersion;
            switch (type)
            {
                case WatchEventType.Added or WatchEventType.Modified:
                    UseOrLog(secret);
                    break;
                case WatchEventType.Deleted when content.Creation is { } creation && content.IsLoaded():
                    await OperatorOwnedSecret.CreateOrReadAsync(kubernetes, name, @namespace, creation.EntriesInUse(), cancellationToken);
                    logger.LogWarning("{What} {Source} was deleted: written again with the {InUse} in use", content.What, Describe, content.InUse);
                    break;
                case WatchEventType.Deleted when content.Creation is { } creation:
                    await OperatorOwnedSecret.CreateOrReadAsync(kubernetes, name, @namespace, creation.NewEntries(), cancellationToken);
                    logger.LogInformation("{What}: {Source} was deleted: created again {Created}", content.What, Describe, creation.Created);
                    break;
                case WatchEventType.Deleted:
                    LogMissing("was deleted");
                    break;
            }
        }

        return resourceVersion;
    }

    private void Use(V1Secret secret)
    {
        var first = !content.IsLoaded();
        content.Use(secret);
        if (first)
        {
            logger.LogInformation("{What}: {Source} in use", content.What, Describe);
        }
    }

    /// <summary>Uses the Secret; one that is not usable is logged and leaves what is in use in use.</summary>
    private void UseOrLog(V1Secret secret)
    {
        try
        {
            Use(secret);
        }
        catch (InvalidDataException e)
        {
            logger.LogError("{What}: {Error}; {State}", content.What, e.Message, State);
        }
    }

    private void LogMissing(string what) =>
        logger.LogError("{What} {Source} {Missing}: {State}; {Fix}", content.What, Describe, what, State, content.Missing);

    /// <summary>What holds meanwhile: what is in use stays, or nothing is.</summary>
    private string State => content.IsLoaded() ? $"the {content.InUse} in use stays in use" : content.WhileNotLoaded;
}
