using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace KubeCapture.Testing.Logging;

/// <summary>
/// A logger that keeps every line it is given, as "Level: message", for a test to read (from any
/// thread) or to wait for: <see cref="WhenLoggedAsync"/> completes on the line itself, so a test waits
/// on what the code says it did rather than polling for its effect.
/// </summary>
public sealed class RecordingLogger<T> : ILogger<T>
{
    private readonly long created = Stopwatch.GetTimestamp();
    private readonly List<string> lines = [];
    private readonly List<TimeSpan> times = [];
    private readonly List<(Func<string, bool> Matches, TaskCompletionSource<string> Logged)> waiting = [];

    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (lines)
            {
                return [.. lines];
            }
        }
    }

    /// <summary>Each line with when it was logged (since this logger was made).</summary>
    public IReadOnlyList<(TimeSpan At, string Line)> Timed
    {
        get
        {
            lock (lines)
            {
                return [.. times.Zip(lines)];
            }
        }
    }

    /// <summary>The first line (logged before or after this call) that <paramref name="matches"/>; throws naming <paramref name="what"/> and the lines logged when none comes within <paramref name="patience"/>.</summary>
    public async Task<string> WhenLoggedAsync(Func<string, bool> matches, string what, TimeSpan patience)
    {
        var logged = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (lines)
        {
            if (lines.FirstOrDefault(matches) is { } line)
            {
                return line;
            }

            waiting.Add((matches, logged));
        }

        try
        {
            return await logged.Task.WaitAsync(patience);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"nothing logged within {patience.TotalSeconds} s for {what}; logged: {string.Join(" | ", Lines)}");
        }
    }

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        var line = $"{logLevel}: {formatter(state, exception)}";
        List<TaskCompletionSource<string>> matched;
        lock (lines)
        {
            lines.Add(line);
            times.Add(Stopwatch.GetElapsedTime(created));
            matched = [.. waiting.Where(w => w.Matches(line)).Select(w => w.Logged)];
            waiting.RemoveAll(w => matched.Contains(w.Logged));
        }

        matched.ForEach(m => m.TrySetResult(line));
    }
}
