namespace KubeCapture.Operator.Ingest;

/// <summary>
/// The keys the per-target upload tokens are signed with: <see cref="Current"/> signs new tokens;
/// <see cref="Accepted"/> (current, then previous) verify them, so a rotation never fails an agent
/// started before it. In the cluster they come from a Secret every replica and every restart shares
/// (<see cref="IngestTokenKeySecret"/>); until it is read, <see cref="IsLoaded"/> is false and an
/// upload is answered "unavailable, retry".
/// </summary>
public sealed class IngestTokenKeys
{
    private readonly TaskCompletionSource loaded = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile KeySet? keys;

    public bool IsLoaded => keys is not null;

    /// <summary>Signs new tokens.</summary>
    public byte[] Current => keys?.Current ?? throw new InvalidOperationException("the ingest token key is not loaded yet");

    /// <summary>Verify tokens: the current key, then the previous one (empty until loaded).</summary>
    public IReadOnlyList<byte[]> Accepted => keys?.Accepted ?? [];

    /// <summary>Where the keys come from, for log lines.</summary>
    public string Source { get; private set; } = "";

    public static IngestTokenKeys Of(byte[] current, string source)
    {
        var keys = new IngestTokenKeys();
        keys.Use(current, null, source);
        return keys;
    }

    public Task WhenLoadedAsync(CancellationToken cancellationToken) => loaded.Task.WaitAsync(cancellationToken);

    /// <summary>Takes <paramref name="current"/> (and <paramref name="previous"/>, still accepted) from now on.</summary>
    public void Use(byte[] current, byte[]? previous, string source)
    {
        if (current.Length == 0)
        {
            throw new ArgumentException("an empty token key", nameof(current));
        }

        keys = new KeySet(current, previous is { Length: > 0 } ? [current, previous] : [current]);
        Source = source;
        loaded.TrySetResult();
    }

    private sealed record KeySet(byte[] Current, IReadOnlyList<byte[]> Accepted);
}
