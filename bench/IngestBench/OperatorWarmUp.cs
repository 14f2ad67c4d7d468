namespace KubeCapture.Bench;

/// <summary>
/// Brings an operator process to the state a long-running one is in before it is measured: its JIT
/// done. After start, the first GiB through the ingest costs about twice the CPU of the next: tiered
/// compilation with dynamic PGO compiles each hot method again, optimized, once it has run a while,
/// the per-part and per-checkpoint paths only after some dozens of parts; a fixed 64 MiB warm-up left
/// most of that inside the timed upload, and "two rounds cost the same CPU" stops too early (rounds
/// cost the same while the JIT is still at work, then drop). What tells is the runtime's own record:
/// started with <c>DOTNET_PerfMapEnabled=3</c>, the operator appends every method it compiles to
/// <c>/tmp/perf-PID.map</c>. Measured (64 MiB rounds, load 20-50): the first round compiles about
/// 4,500 methods for 1.6 CPU s, the count falls below 2 % of that by round 10 or so, when a round
/// costs within some 10 % of what it costs from then on (0.25-0.28 CPU s), and a trickle of methods
/// called once per upload goes on for dozens of rounds more (they tier up after some 30 uploads:
/// nothing per byte). The JIT comes in waves: one quiet round can be followed by hundreds of methods
/// again (seen: 65, then the timed GiB at twice the warm cost). Uploads of <c>bytes</c> each are
/// repeated until two rounds in a row compile fewer than 2 % of the first round's methods (at most
/// <see cref="MaxRounds"/> rounds); each round's compilations and CPU seconds are printed to stderr.
/// </summary>
public static class OperatorWarmUp
{
    // At most this many rounds: KCB_WARM_UP_MAX_ROUNDS (bench/smoke.sh sets 1: a smoke run proves the
    // bench runs, its figures are not results, and a warm-up to the end of the JIT takes minutes).
    private static readonly int MaxRounds = int.TryParse(Environment.GetEnvironmentVariable("KCB_WARM_UP_MAX_ROUNDS"), out var rounds) && rounds > 0 ? rounds : 24;
    private const double Quiet = 0.02;

    /// <summary>Returns the bytes the warm-up sent.</summary>
    public static async Task<long> RunAsync(AgentStream agent, int operatorPid, long bytes)
    {
        var map = $"/tmp/perf-{operatorPid}.map";
        if (!File.Exists(map))
        {
            throw new InvalidOperationException($"{map} does not exist: start the operator with DOTNET_PerfMapEnabled=3, so the warm-up can tell when its JIT is done");
        }

        var cpu = new ProcessCpu(operatorPid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var first = 0;
        var quietRounds = 0;
        for (var round = 1; ; round++)
        {
            var methods = File.ReadLines(map).Count();
            var before = cpu.Seconds();
            await agent.UploadAsync(bytes);
            var spent = cpu.Seconds() - before;
            var compiled = File.ReadLines(map).Count() - methods;
            await Console.Error.WriteLineAsync($"warm-up of operator {operatorPid}, round {round}: {bytes >> 20} MiB, {compiled} methods compiled, {spent:0.00} CPU s");
            first = round == 1 ? compiled : first;
            quietRounds = round > 1 && compiled < Quiet * first ? quietRounds + 1 : 0;
            if (quietRounds == 2 || round == MaxRounds)
            {
                return round * bytes;
            }
        }
    }
}
