namespace KubeCapture.Bench;

/// <summary>
/// Brings an operator process to the state a long-running one is in before it is measured: its JIT
/// done. After start, the first GiB through the ingest costs about twice the CPU of the next (tiered
/// compilation with dynamic PGO compiles each hot method again, optimized, once it has run a while:
/// the per-part and per-checkpoint paths only after some dozens of parts), so a fixed small warm-up left most of that work inside the
/// timed upload. Uploads of <c>bytes</c> each are repeated until two in a row cost the operator the
/// same CPU within 10 % (at least 4, at most 16 rounds); each round is printed to stderr.
/// </summary>
public static class OperatorWarmUp
{
    private const int MinRounds = 4;
    private const int MaxRounds = 16;
    private const double Settled = 0.10;

    /// <summary>Returns the bytes the warm-up sent.</summary>
    public static async Task<long> RunAsync(AgentStream agent, ProcessCpu operatorCpu, long bytes)
    {
        double? previous = null;
        var round = 1;
        for (; round <= MaxRounds; round++)
        {
            var before = operatorCpu.Seconds();
            await agent.UploadAsync(bytes);
            var spent = operatorCpu.Seconds() - before;
            await Console.Error.WriteLineAsync($"warm-up of operator {operatorCpu.Pids}, round {round}: {bytes >> 20} MiB cost it {spent:0.00} CPU s");
            if (round >= MinRounds && previous is { } last && Math.Abs(spent - last) <= Settled * Math.Max(spent, last))
            {
                break;
            }

            previous = spent;
        }

        return Math.Min(round, MaxRounds) * bytes;
    }
}
