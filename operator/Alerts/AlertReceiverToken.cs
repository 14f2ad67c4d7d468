using System.Security.Cryptography;
using System.Text;
using k8s;
using k8s.Models;
using KubeCapture.Operator.Configuration;

namespace KubeCapture.Operator.Alerts;

/// <summary>
/// The bearer token Alertmanager shows the alert receiver (its <c>http_config.authorization.credentials_file</c>),
/// entry <c>token</c> of a Secret in the operator's namespace: the chart's <c>RELEASE-kubecapture-alert-receiver</c>,
/// created by the operator with 32 random bytes when missing (never by the chart, so a render or
/// <c>helm upgrade</c> never replaces it; of two replicas racing, the first one's wins), or the one
/// <c>alertReceiver.existingSecret</c> names. Read at start, then followed with one watch by name
/// (<see cref="FollowedSecret"/>): a new token is in use as soon as it is written (the old one refused),
/// a notification never reads the API, and an idle operator reads nothing. A token that is not usable
/// (missing, under <see cref="MinimumLength"/> characters) leaves the token in use in use, with an error;
/// the operator's Secret deleted is written again with the token in use, an <c>existingSecret</c> deleted
/// leaves the token in use in use until it is back. A presented token is compared in constant time
/// (SHA-256 of both, <see cref="CryptographicOperations.FixedTimeEquals"/>), surrounding white space
/// trimmed as Alertmanager trims its credentials file.
/// </summary>
public sealed class AlertReceiverToken : BackgroundService
{
    public const string Entry = "token";
    public const int MinimumLength = 16;

    private readonly AlertReceiverOptions _options;
    private readonly ILogger<AlertReceiverToken> _logger;
    private readonly FollowedSecret _secret;
    private TokenInUse? _inUse;

    public AlertReceiverToken(IKubernetes kubernetes, AlertReceiverOptions options, ILogger<AlertReceiverToken> logger)
    {
        (_options, _logger) = (options, logger);
        _secret = new FollowedSecret(kubernetes, options.Namespace, options.SecretName, new SecretContent
        {
            What = "alert receiver token",
            InUse = "token",
            Use = Use,
            IsLoaded = () => IsLoaded,
            WhileNotLoaded = "every notification is answered 503 until it is loaded (Alertmanager sends it again)",
            Creation = options.CreateSecret
                ? new SecretCreation(
                    () => Entries(Convert.ToBase64String(RandomNumberGenerator.GetBytes(32))),
                    // Alertmanager holds the token in use: keep it valid.
                    () => Entries(Volatile.Read(ref _inUse)!.Token),
                    "with a new token (give it to Alertmanager: docs/recorder.md, \"By an alert\")")
                : null,
            Missing = $"(alertReceiver.existingSecret) create it with the token in its '{Entry}' entry: {CreateCommand}",
        }, logger);
    }

    public string Describe => _secret.Describe;

    /// <summary>Whether the token is loaded (until then every notification is answered 503: Alertmanager sends it again).</summary>
    public bool IsLoaded => Volatile.Read(ref _inUse) is not null;

    /// <summary>Why <paramref name="authorization"/> (the request's Authorization header) is not the receiver's bearer token in use now, or null when it is.</summary>
    public string? Refusal(string? authorization)
    {
        const string Bearer = "Bearer ";
        if (authorization is null || !authorization.StartsWith(Bearer, StringComparison.OrdinalIgnoreCase))
        {
            return "no bearer token: Alertmanager's webhook_config needs http_config.authorization.credentials_file with the receiver's token";
        }

        var presented = SHA256.HashData(Encoding.UTF8.GetBytes(authorization[Bearer.Length..].Trim()));
        return CryptographicOperations.FixedTimeEquals(presented, Volatile.Read(ref _inUse)?.Hash) ? null
            : $"the bearer token is not the alert receiver's (the token entry of {Describe})";
    }

    /// <summary>Loads the token and follows its Secret until the operator stops.</summary>
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => _secret.RunAsync(stoppingToken);

    private string CreateCommand => $"kubectl create secret generic {_options.SecretName} -n {_options.Namespace} --from-literal={Entry}=\"$(head -c 32 /dev/urandom | base64)\"";

    private void Use(V1Secret secret)
    {
        if (secret.Data is null || !secret.Data.TryGetValue(Entry, out var token) || Encoding.UTF8.GetString(token).Trim() is not { Length: >= MinimumLength } trimmed)
        {
            throw new InvalidDataException($"{Describe} has no '{Entry}' entry of at least {MinimumLength} characters (write one: {CreateCommand} --dry-run=client -o yaml | kubectl apply -f -)");
        }

        var inUse = new TokenInUse(trimmed, SHA256.HashData(Encoding.UTF8.GetBytes(trimmed)));
        if (Interlocked.Exchange(ref _inUse, inUse) is { } before && !before.Hash.AsSpan().SequenceEqual(inUse.Hash))
        {
            _logger.LogInformation("alert receiver token of {Source} changed: the new one is in use, the one before is refused", Describe);
        }
    }

    private static Dictionary<string, byte[]> Entries(string token) => new() { [Entry] = Encoding.UTF8.GetBytes(token) };

    /// <summary>The token in use and its SHA-256 (what a presented token's hash is compared with).</summary>
    private sealed record TokenInUse(string Token, byte[] Hash);
}
