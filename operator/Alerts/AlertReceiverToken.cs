using System.Net;
using System.Security.Cryptography;
using System.Text;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace KubeCapture.Operator.Alerts;

/// <summary>
/// The bearer token Alertmanager shows the alert receiver (its <c>http_config.authorization.credentials_file</c>),
/// entry <c>token</c> of a Secret in the operator's namespace: the chart's <c>RELEASE-kubecapture-alert-receiver</c>,
/// created by the operator with 32 random bytes when missing (never by the chart, so a render or
/// <c>helm upgrade</c> never replaces it; of two replicas racing, the first one's wins), or the one
/// <c>alertReceiver.existingSecret</c> names. Read at start; read again when a notification shows a token
/// that is not the one read (the Secret may have been rotated), at most once per <see cref="RereadPeriod"/>,
/// so a changed token takes effect without a restart, an idle operator reads nothing, and wrong tokens
/// cannot drive reads of the API. A presented token is compared in constant time
/// (SHA-256 of both, <see cref="CryptographicOperations.FixedTimeEquals"/>), surrounding white space
/// trimmed as Alertmanager trims its credentials file.
/// </summary>
public sealed class AlertReceiverToken(IKubernetes kubernetes, AlertReceiverOptions options, ILogger<AlertReceiverToken> logger) : BackgroundService
{
    public const string Entry = "token";

    public static readonly TimeSpan RereadPeriod = TimeSpan.FromSeconds(30);

    private readonly SemaphoreSlim _reread = new(1, 1);
    private byte[]? _hash;
    private long _lastRead = long.MinValue / 2;

    public string Describe => $"Secret {options.Namespace}/{options.SecretName}";

    /// <summary>Whether the token is loaded (until then every notification is answered 503: Alertmanager sends it again).</summary>
    public bool IsLoaded => Volatile.Read(ref _hash) is not null;

    /// <summary>Why <paramref name="authorization"/> (the request's Authorization header) is not the receiver's bearer token, or null when it is.</summary>
    public string? Refusal(string? authorization)
    {
        const string Bearer = "Bearer ";
        if (authorization is null || !authorization.StartsWith(Bearer, StringComparison.OrdinalIgnoreCase))
        {
            return "no bearer token: Alertmanager's webhook_config needs http_config.authorization.credentials_file with the receiver's token";
        }

        var presented = SHA256.HashData(Encoding.UTF8.GetBytes(authorization[Bearer.Length..].Trim()));
        return CryptographicOperations.FixedTimeEquals(presented, Volatile.Read(ref _hash)) ? null
            : $"the bearer token is not the alert receiver's (the token entry of {Describe})";
    }

    /// <summary>
    /// <see cref="Refusal"/>, and when the token presented is not the one read, the Secret read again
    /// (at most once per <see cref="RereadPeriod"/>) and the token compared with what it holds now.
    /// </summary>
    public async Task<string?> RefusalAsync(string? authorization, CancellationToken cancellationToken)
    {
        var refusal = Refusal(authorization);
        if (refusal is null || authorization is null || Environment.TickCount64 - Volatile.Read(ref _lastRead) < RereadPeriod.TotalMilliseconds)
        {
            return refusal;
        }

        await _reread.WaitAsync(cancellationToken);
        try
        {
            if (Environment.TickCount64 - Volatile.Read(ref _lastRead) >= RereadPeriod.TotalMilliseconds)
            {
                await LoadOrCreateAsync(cancellationToken);
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            logger.LogWarning("alert receiver token {Source}: {Error}; the token read before stays in use", Describe, e.Message);
        }
        finally
        {
            _reread.Release();
        }

        return Refusal(authorization);
    }

    /// <summary>Reads the token until it is loaded (retrying with a backoff); after that, only <see cref="RefusalAsync"/> reads it again.</summary>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var backoff = TimeSpan.FromMilliseconds(250);
        while (!stoppingToken.IsCancellationRequested && !IsLoaded)
        {
            try
            {
                await LoadOrCreateAsync(stoppingToken);
            }
            catch (Exception e) when (e is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                logger.LogError("alert receiver token {Source}: {Error}; until it is read, every notification is answered 503 (Alertmanager sends it again)", Describe, e.Message);
                await Task.Delay(backoff, stoppingToken);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, RereadPeriod.Ticks));
            }
        }
    }

    /// <summary>Reads the Secret (creating it when missing and the operator names it), and uses its token.</summary>
    public async Task LoadOrCreateAsync(CancellationToken cancellationToken)
    {
        Volatile.Write(ref _lastRead, Environment.TickCount64);
        V1Secret secret;
        try
        {
            secret = await kubernetes.CoreV1.ReadNamespacedSecretAsync(options.SecretName, options.Namespace, cancellationToken: cancellationToken);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound && options.CreateSecret)
        {
            secret = await CreateAsync(cancellationToken);
            logger.LogInformation("alert receiver: created {Source} with a new token (give it to Alertmanager: docs/recorder.md, \"By an alert\")", Describe);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            throw new InvalidOperationException($"{Describe} (alertReceiver.existingSecret) does not exist: create it with the token in its '{Entry}' entry", e);
        }

        if (secret.Data is null || !secret.Data.TryGetValue(Entry, out var token) || Encoding.UTF8.GetString(token).Trim() is not { Length: >= 16 } trimmed)
        {
            throw new InvalidDataException($"{Describe} has no '{Entry}' entry of at least 16 characters (kubectl create secret generic {options.SecretName} -n {options.Namespace} --from-literal={Entry}=\"$(head -c 32 /dev/urandom | base64)\")");
        }

        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(trimmed));
        if (Interlocked.Exchange(ref _hash, hash) is not { } before)
        {
            logger.LogInformation("alert receiver: the token of {Source} is in use", Describe);
        }
        else if (!before.AsSpan().SequenceEqual(hash))
        {
            logger.LogInformation("alert receiver: the token of {Source} changed: the new one is in use", Describe);
        }
    }

    private Task<V1Secret> CreateAsync(CancellationToken cancellationToken) =>
        Configuration.OperatorOwnedSecret.CreateOrReadAsync(kubernetes, options.SecretName, options.Namespace,
            new Dictionary<string, byte[]> { [Entry] = Encoding.ASCII.GetBytes(Convert.ToBase64String(RandomNumberGenerator.GetBytes(32))) }, cancellationToken);
}
