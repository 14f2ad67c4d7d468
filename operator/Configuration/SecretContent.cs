using k8s.Models;

namespace KubeCapture.Operator.Configuration;

/// <summary>What a <see cref="FollowedSecret"/> holds, how it is used, and the words its log lines use.</summary>
public sealed class SecretContent
{
    /// <summary>What the Secret holds, as its log lines start: "ingest token key".</summary>
    public required string What { get; init; }

    /// <summary>What is in use, as in "written again with the keys in use": "keys", "token".</summary>
    public required string InUse { get; init; }

    /// <summary>
    /// Validates a Secret's entries and puts them in use; throws <see cref="InvalidDataException"/>
    /// naming the Secret and the fix when they are not usable (and then changes nothing).
    /// </summary>
    public required Action<V1Secret> Use { get; init; }

    /// <summary>Whether entries are in use.</summary>
    public required Func<bool> IsLoaded { get; init; }

    /// <summary>What waits while nothing is in use: "uploads wait (agents retry) and no capture starts until it is loaded".</summary>
    public required string WhileNotLoaded { get; init; }

    /// <summary>How the operator creates the Secret when it is missing; null when it is someone else's (never created).</summary>
    public SecretCreation? Creation { get; init; }

    /// <summary>How to fix a missing Secret the operator does not create: "create it with …".</summary>
    public string Missing { get; init; } = "";
}

/// <summary>
/// A Secret the operator creates: <paramref name="NewEntries"/> when it is missing at start,
/// <paramref name="EntriesInUse"/> when it is deleted later; the log says "created Secret ns/name
/// <paramref name="Created"/>".
/// </summary>
public sealed record SecretCreation(Func<IDictionary<string, byte[]>> NewEntries, Func<IDictionary<string, byte[]>> EntriesInUse, string Created);
