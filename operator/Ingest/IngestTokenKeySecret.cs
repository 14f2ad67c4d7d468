using System.Net;
using System.Security.Cryptography;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace KubeCapture.Operator.Ingest;

/// <summary>
/// The ingest token key in a Secret of the operator's namespace (<c>Ingest:TokenKeySecret</c>; the
/// chart's <c>RELEASE-kubecapture-ingest-token</c>), shared by every replica and every restart, so an
/// upgrade, a crash, a drain or a new leader never turns the running agents' tokens away. Entries:
/// <c>current</c> (signs new tokens; at least 16 bytes) and optionally <c>previous</c> (still accepted:
/// a rotation moves current to previous and writes a new current). Read at start, created when
/// missing (32 random bytes; of two replicas racing, the first one's key wins, as for the serving
/// certificate), and watched: a rotation takes effect without a restart, and a deleted Secret is
/// written again with the keys in use.
/// </summary>
public sealed class IngestTokenKeySecret(IKubernetes kubernetes, string @namespace, string name, IngestTokenKeys keys, ILogger<IngestTokenKeySecret> logger) : BackgroundService
{
    public const string CurrentEntry = "current";
    public const string PreviousEntry = "previous";
    public const int MinimumKeyBytes = 16;

    public string Describe => $"Secret {@namespace}/{name}";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var backoff = TimeSpan.FromMilliseconds(250);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var secret = await LoadOrCreateAsync(stoppingToken);
                backoff = TimeSpan.FromMilliseconds(250);
                await FollowAsync(secret.Metadata.ResourceVersion, stoppingToken);
            }
            catch (Exception e) when (e is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                if (keys.IsLoaded)
                {
                    logger.LogInformation("ingest token key {Source}: reading it again after {Error}", Describe, e.Message);
                }
                else
                {
                    logger.LogError("ingest token key {Source} is not loaded: {Error}; uploads wait (agents retry) and no capture starts until it is", Describe, e.Message);
                }

                await Task.Delay(backoff, stoppingToken);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, TimeSpan.FromSeconds(30).Ticks));
            }
        }
    }

    /// <summary>Reads the Secret, or creates it with a new random key; the keys are in use once this returns.</summary>
    public async Task<V1Secret> LoadOrCreateAsync(CancellationToken cancellationToken)
    {
        V1Secret secret;
        try
        {
            secret = await kubernetes.CoreV1.ReadNamespacedSecretAsync(name, @namespace, cancellationToken: cancellationToken);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            secret = await CreateAsync(RandomNumberGenerator.GetBytes(32), null, cancellationToken);
            logger.LogInformation("ingest token key: created {Source} with a new key", Describe);
        }

        var first = !keys.IsLoaded;
        Use(secret);
        if (first)
        {
            logger.LogInformation("ingest token key: {Source} in use", Describe);
        }

        return secret;
    }

    private async Task FollowAsync(string resourceVersion, CancellationToken cancellationToken)
    {
        var events = kubernetes.CoreV1.WatchListNamespacedSecretAsync(@namespace, fieldSelector: $"metadata.name={name}",
            resourceVersion: resourceVersion, timeoutSeconds: 600, cancellationToken: cancellationToken);
        await foreach (var (type, secret) in events)
        {
            switch (type)
            {
                case WatchEventType.Added or WatchEventType.Modified:
                    Use(secret);
                    break;
                case WatchEventType.Deleted:
                    // The agents running hold tokens of the keys in use: keep them valid.
                    await CreateAsync(keys.Accepted[0], keys.Accepted.Count > 1 ? keys.Accepted[1] : null, cancellationToken);
                    logger.LogWarning("ingest token key {Source} was deleted: written again with the keys in use", Describe);
                    break;
            }
        }
    }

    private void Use(V1Secret secret)
    {
        var current = Entry(secret, CurrentEntry);
        if (current is null || current.Length < MinimumKeyBytes)
        {
            throw new InvalidDataException($"{Describe} has no '{CurrentEntry}' entry of at least {MinimumKeyBytes} bytes (delete it and the operator creates one, or write one: head -c 32 /dev/urandom > current; kubectl create secret generic {name} -n {@namespace} --from-file=current)");
        }

        var rotated = keys.IsLoaded && !keys.Current.AsSpan().SequenceEqual(current);
        keys.Use(current, Entry(secret, PreviousEntry), Describe);
        if (rotated)
        {
            logger.LogInformation("ingest token key {Source} rotated: new tokens use the new key; tokens of the previous key are still accepted", Describe);
        }
    }

    private async Task<V1Secret> CreateAsync(byte[] current, byte[]? previous, CancellationToken cancellationToken)
    {
        var data = new Dictionary<string, byte[]> { [CurrentEntry] = current };
        if (previous is not null)
        {
            data[PreviousEntry] = previous;
        }

        return await Configuration.OperatorOwnedSecret.CreateOrReadAsync(kubernetes, name, @namespace, data, cancellationToken);
    }

    private static byte[]? Entry(V1Secret secret, string key) =>
        secret.Data is not null && secret.Data.TryGetValue(key, out var value) && value.Length > 0 ? value : null;
}
