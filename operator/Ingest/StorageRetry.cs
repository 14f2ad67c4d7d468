using KubeCapture.Operator.Storage;

namespace KubeCapture.Operator.Ingest;

/// <summary>Storage stayed unavailable for the whole retry budget, or refused the request (<see cref="Refused"/>).</summary>
public sealed class StorageUnavailableException(string message, Exception inner, bool refused = false) : Exception(message, inner)
{
    /// <summary>The storage answered with a refusal that no retry can change (S3 4xx: EntityTooSmall, AccessDenied, ...).</summary>
    public bool Refused { get; } = refused;
}

/// <summary>
/// Retries a storage call with exponential backoff (0.2 s doubling to 5 s) until the budget is spent;
/// a refusal by the storage (<see cref="S3ErrorException.IsPermanent"/>) fails at once.
/// </summary>
public static class StorageRetry
{
    public static async Task<T> RunAsync<T>(string what, TimeSpan budget, Func<CancellationToken, Task<T>> call, ILogger logger, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + budget;
        var delay = TimeSpan.FromMilliseconds(200);
        var attempt = 0;
        while (true)
        {
            attempt++;
            try
            {
                return await call(cancellationToken);
            }
            catch (System.Text.Json.JsonException e)
            {
                throw new StorageUnavailableException($"{what} failed: the stored object is not valid JSON ({e.Message})", e);
            }
            catch (S3ErrorException e) when (e.IsPermanent)
            {
                throw new StorageUnavailableException($"{what} was refused: {e.Message}", e, refused: true);
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                if (DateTime.UtcNow + delay > deadline)
                {
                    throw new StorageUnavailableException($"{what} failed for {budget.TotalSeconds:0.#}s ({attempt} attempts): {e.Message}", e);
                }

                logger.LogWarning("{What} failed (attempt {Attempt}), retrying in {Delay} ms: {Error}", what, attempt, (int)delay.TotalMilliseconds, e.Message);
                await Task.Delay(delay, cancellationToken);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
            }
        }
    }

    public static Task RunAsync(string what, TimeSpan budget, Func<CancellationToken, Task> call, ILogger logger, CancellationToken cancellationToken) =>
        RunAsync(what, budget, async ct =>
        {
            await call(ct);
            return true;
        }, logger, cancellationToken);
}
