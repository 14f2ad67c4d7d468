using System.Net;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace KubeCapture.Operator.Configuration;

/// <summary>
/// A Secret of the operator's namespace whose entries the operator uses as they are now: read at
/// start, created when missing when the operator owns it (<see cref="SecretContent.Creation"/>,
/// <see cref="OperatorOwnedSecret"/>), then followed with one watch by name (list and watch with <c>fieldSelector=metadata.name=…</c>),
/// so a change takes effect at once and an idle operator reads nothing. A change that is not usable
/// leaves what is in use in use (an error names the Secret and the fix); a deleted Secret is written
/// again with what is in use when the operator creates it, and otherwise what is in use stays in use
/// until the Secret is back.
/// </summary>
public sealed class FollowedSecret(IKubernetes kubernetes, string @namespace, string name, SecretContent content, ILogger logger)
{
    public string Describe => $"Secret {@namespace}/{name}";

    /// <summary>Loads the Secret and follows it until <paramref name="cancellationToken"/>; retries (with a backoff) whatever fails.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var backoff = TimeSpan.FromMilliseconds(250);
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var resourceVersion = await LoadAsync(cancellationToken);
                backoff = TimeSpan.FromMilliseconds(250);
                await FollowAsync(resourceVersion, cancellationToken);
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
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
    /// Reads the Secret, or creates it when missing, and uses its entries; returns the resource version
    /// to follow it from. A Secret the operator does not create that is missing throws until something is
    /// in use; after that, what is in use stays (an error says so) and the Secret is followed from now (null).
    /// </summary>
    public async Task<string?> LoadAsync(CancellationToken cancellationToken)
    {
        V1Secret secret;
        try
        {
            secret = await kubernetes.CoreV1.ReadNamespacedSecretAsync(name, @namespace, cancellationToken: cancellationToken);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound && content.Creation is { } creation)
        {
            secret = await OperatorOwnedSecret.CreateOrReadAsync(kubernetes, name, @namespace, creation.NewEntries(), cancellationToken);
            logger.LogInformation("{What}: created {Source} {Created}", content.What, Describe, creation.Created);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            if (!content.IsLoaded())
            {
                throw new InvalidOperationException($"{Describe} does not exist: {content.Missing}", e);
            }

            LogMissing("does not exist");
            return null;
        }

        var first = !content.IsLoaded();
        content.Use(secret);
        if (first)
        {
            logger.LogInformation("{What}: {Source} in use", content.What, Describe);
        }

        return secret.Metadata.ResourceVersion;
    }

    /// <summary>Watches the Secret by name from <paramref name="resourceVersion"/> (null: from now, its current state first) until the server ends the watch.</summary>
    private async Task FollowAsync(string? resourceVersion, CancellationToken cancellationToken)
    {
        var events = kubernetes.CoreV1.WatchListNamespacedSecretAsync(@namespace, fieldSelector: $"metadata.name={name}",
            resourceVersion: resourceVersion, timeoutSeconds: 600, cancellationToken: cancellationToken);
        await foreach (var (type, secret) in events)
        {
            switch (type)
            {
                case WatchEventType.Added or WatchEventType.Modified:
                    UseChanged(secret);
                    break;
                case WatchEventType.Deleted when content.Creation is { } creation:
                    await OperatorOwnedSecret.CreateOrReadAsync(kubernetes, name, @namespace, creation.EntriesInUse(), cancellationToken);
                    logger.LogWarning("{What} {Source} was deleted: written again with the {InUse} in use", content.What, Describe, content.InUse);
                    break;
                case WatchEventType.Deleted:
                    LogMissing("was deleted");
                    break;
            }
        }
    }

    /// <summary>Uses a changed Secret; one that is not usable leaves what is in use in use.</summary>
    private void UseChanged(V1Secret secret)
    {
        try
        {
            content.Use(secret);
        }
        catch (InvalidDataException e) when (content.IsLoaded())
        {
            logger.LogError("{What}: {Error}; the {InUse} in use stays in use until it is fixed", content.What, e.Message, content.InUse);
        }
    }

    private void LogMissing(string what) =>
        logger.LogError("{What} {Source} {Missing}: the {InUse} in use stays in use; {Fix}", content.What, Describe, what, content.InUse, content.Missing);
}
