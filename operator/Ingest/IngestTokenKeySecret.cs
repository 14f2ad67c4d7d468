using System.Security.Cryptography;
using k8s;
using k8s.Models;
using KubeCapture.Operator.Configuration;

namespace KubeCapture.Operator.Ingest;

/// <summary>
/// The ingest token key in a Secret of the operator's namespace (<c>Ingest:TokenKeySecret</c>; the
/// chart's <c>RELEASE-kubecapture-ingest-token</c>), shared by every replica and every restart, so an
/// upgrade, a crash, a drain or a new leader never turns the running agents' tokens away. Entries:
/// <c>current</c> (signs new tokens; at least 16 bytes) and optionally <c>previous</c> (still accepted:
/// a rotation moves current to previous and writes a new current). Read at start, created when
/// missing (32 random bytes; of two replicas racing, the first one's key wins, as for the serving
/// certificate), and followed (<see cref="FollowedSecret"/>): a rotation takes effect without a
/// restart, a change without a usable key leaves the keys in use in use, and a deleted Secret is
/// written again with the keys in use.
/// </summary>
public sealed class IngestTokenKeySecret : BackgroundService
{
    public const string CurrentEntry = "current";
    public const string PreviousEntry = "previous";
    public const int MinimumKeyBytes = 16;

    private readonly string _namespace;
    private readonly string _name;
    private readonly IngestTokenKeys _keys;
    private readonly ILogger<IngestTokenKeySecret> _logger;
    private readonly FollowedSecret _secret;

    public IngestTokenKeySecret(IKubernetes kubernetes, string @namespace, string name, IngestTokenKeys keys, ILogger<IngestTokenKeySecret> logger)
    {
        (_namespace, _name, _keys, _logger) = (@namespace, name, keys, logger);
        _secret = new FollowedSecret(kubernetes, @namespace, name, new SecretContent
        {
            What = "ingest token key",
            InUse = "keys",
            Use = Use,
            IsLoaded = () => keys.IsLoaded,
            WhileNotLoaded = "uploads wait (agents retry) and no capture starts until it is loaded",
            Creation = new SecretCreation(
                () => Entries(RandomNumberGenerator.GetBytes(32), null),
                // The agents running hold tokens of the keys in use: keep them valid.
                () => Entries(keys.Accepted[0], keys.Accepted.Count > 1 ? keys.Accepted[1] : null),
                "with a new key"),
        }, logger);
    }

    public string Describe => _secret.Describe;

    protected override Task ExecuteAsync(CancellationToken stoppingToken) => _secret.RunAsync(stoppingToken);

    /// <summary>Reads the Secret, or creates it with a new random key; the keys are in use once this returns.</summary>
    public Task LoadOrCreateAsync(CancellationToken cancellationToken) => _secret.LoadAsync(cancellationToken);

    private void Use(V1Secret secret)
    {
        var current = Entry(secret, CurrentEntry);
        if (current is null || current.Length < MinimumKeyBytes)
        {
            throw new InvalidDataException($"{Describe} has no '{CurrentEntry}' entry of at least {MinimumKeyBytes} bytes (delete it and the operator creates one, or write one: head -c 32 /dev/urandom > current; kubectl create secret generic {_name} -n {_namespace} --from-file=current)");
        }

        var rotated = _keys.IsLoaded && !_keys.Current.AsSpan().SequenceEqual(current);
        _keys.Use(current, Entry(secret, PreviousEntry), Describe);
        if (rotated)
        {
            _logger.LogInformation("ingest token key {Source} rotated: new tokens use the new key; tokens of the previous key are still accepted", Describe);
        }
    }

    private static Dictionary<string, byte[]> Entries(byte[] current, byte[]? previous)
    {
        var data = new Dictionary<string, byte[]> { [CurrentEntry] = current };
        if (previous is not null)
        {
            data[PreviousEntry] = previous;
        }

        return data;
    }

    private static byte[]? Entry(V1Secret secret, string key) =>
        secret.Data is not null && secret.Data.TryGetValue(key, out var value) && value.Length > 0 ? value : null;
}
