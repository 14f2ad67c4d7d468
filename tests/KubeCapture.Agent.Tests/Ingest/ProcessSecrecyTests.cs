using KubeCapture.Testing.Agent;

namespace KubeCapture.Agent.Tests.Ingest;

/// <summary>
/// Code in the target pod that runs as the same user as the capture agent (a pod with
/// shareProcessNamespace, no runAsUser of its own) cannot read the agent's upload token from its
/// environment, nor its memory: the agent in cluster mode is not dumpable.
/// </summary>
public sealed class ProcessSecrecyTests(LabFixture fixture) : IClassFixture<LabFixture>, IDisposable
{
    private const string Nobody = "65534";
    private const string Token = "the-upload-token-of-this-target";
    private readonly string _agent = AgentBinary.CopyForEveryone();

    [Fact]
    public async Task A_process_of_the_agents_own_user_cannot_read_the_agents_environment_or_memory_in_cluster_mode()
    {
        string[] asNobodyWithNetRaw = ["setpriv", $"--reuid={Nobody}", $"--regid={Nobody}", "--clear-groups", "--inh-caps=-all,+net_raw", "--ambient-caps=-all,+net_raw", "--bounding-set=-all,+net_raw", "env", $"KUBECAPTURE_TOKEN={Token}"];
        await using var agent = AgentProcess.Start(fixture.Server,
            ["capture", "--ingest", "http://127.0.0.1:9", "--capture-uid", "u1", "--capture-namespace", "ns", "--capture-name", "c", "--pod", "p", "--ingest-retry", "60s", "--duration", "60s", "-i", "any"],
            asNobodyWithNetRaw, _agent);
        await agent.WaitUntilListeningAsync();
        // An app container of the pod: the same user, and the runtime's default capabilities (NET_RAW among them), not SYS_PTRACE.
        string[] appProcess = ["setpriv", $"--reuid={Nobody}", $"--regid={Nobody}", "--clear-groups", "--inh-caps=-all,+net_raw", "--ambient-caps=-all,+net_raw", "--bounding-set=-all,+net_raw"];

        var environ = await Testing.Processes.HostCommand.RunAsync(appProcess[0], [.. appProcess[1..], "cat", $"/proc/{AgentPid(agent)}/environ"], TimeSpan.FromSeconds(10));
        var memory = await Testing.Processes.HostCommand.RunAsync(appProcess[0], [.. appProcess[1..], "head", "-c", "1", $"/proc/{AgentPid(agent)}/mem"], TimeSpan.FromSeconds(10));
        var owner = await Testing.Processes.HostCommand.RunAsync("stat", ["-c", "%u", $"/proc/{AgentPid(agent)}/environ"], TimeSpan.FromSeconds(10));

        Assert.NotEqual(0, environ.ExitCode);
        Assert.DoesNotContain(Token, environ.Stdout, StringComparison.Ordinal);
        Assert.Contains("Permission denied", environ.Stderr, StringComparison.Ordinal);
        Assert.NotEqual(0, memory.ExitCode);
        Assert.Equal("0", owner.Stdout.Trim()); // non-dumpable: /proc/PID belongs to root
    }

    /// <summary>The agent's own pid: setpriv and env exec it in place, so the started process is the agent.</summary>
    private static int AgentPid(AgentProcess agent) => agent.Pid;

    public void Dispose() => Directory.Delete(Path.GetDirectoryName(_agent)!, recursive: true);
}
