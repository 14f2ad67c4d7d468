using System.Diagnostics;
using KubeCapture.Operator.Tests.Ingest;
using KubeCapture.Testing.Kubernetes;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Operator.Tests;

/// <summary>
/// The operator process started with a setting it cannot run with: one clear sentence on stderr,
/// exit code 2, no stack trace (as kubecapture-agent does with bad input), before it listens or
/// talks to any API.
/// </summary>
public sealed class ProgramTests
{
    [Fact]
    public async Task A_TLS_ingest_without_a_serving_certificate_stops_the_operator_with_one_sentence_and_exit_2()
    {
        var (exit, output) = await RunAsync("--Reconciler:Enabled=false", "--Ingest:TokenSecret=t", "--Storage:LocalPath=/tmp/kcP-never");

        Assert.Equal(2, exit);
        Assert.Equal("kubecapture-operator: Ingest:Tls is true (the default) but there is no ServingCertificate section: give ServingCertificate:DnsNames (the ingest Service's names) or Mounted files, or set Ingest:Tls=false (unsafe)", output);
    }

    [Fact]
    public async Task An_operator_with_the_reconciler_and_no_stable_token_key_refuses_to_start_instead_of_using_a_random_key()
    {
        var (exit, output) = await RunAsync("--Storage:LocalPath=/tmp/kcP-never", "--Ingest:Tls=false", "--Kestrel:Endpoints:Ingest:Url=http://127.0.0.1:1");

        Assert.Equal(2, exit);
        Assert.StartsWith("kubecapture-operator: no upload token key: set Ingest:TokenKeySecret (a Secret the operator creates when missing and every replica shares; the chart sets it), or Ingest:TokenSecret; with the reconciler on a random key would turn every running agent away after a restart, an upgrade or a change of leader", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_malformed_policy_found_when_the_host_starts_is_one_sentence_naming_the_key()
    {
        var (exit, output) = await RunAsync("--Ingest:TokenSecret=t", "--Storage:LocalPath=/tmp/kcP-never", "--Ingest:Tls=false", "--Kestrel:Endpoints:Ingest:Url=http://127.0.0.1:1",
            "--Kestrel:Endpoints:Http:Url=http://127.0.0.1:1", "--Policy:MaxDuration=soon", "--LeaderElection:Enabled=false");

        Assert.Equal(2, exit);
        Assert.StartsWith("kubecapture-operator: Policy:MaxDuration: ", output, StringComparison.Ordinal);
    }

    /// <summary>Runs the built operator; returns its exit code and its stderr, trimmed (one line; nothing anywhere looks like a stack trace).</summary>
    private static async Task<(int ExitCode, string Output)> RunAsync(params string[] args)
    {
        // A cluster nobody answers at: the errors must be found before any request.
        var kubeconfig = Path.Combine(Path.GetTempPath(), $"kcP-{Environment.ProcessId}.kubeconfig");
        KubeconfigFile.Write(kubeconfig, "https://127.0.0.1:1", "nobody", "no-token", caPem: null);
        var start = new ProcessStartInfo("dotnet") { Environment = { ["KUBECONFIG"] = kubeconfig } };
        foreach (var argument in (string[])["exec", Builds.OperatorDll, .. args])
        {
            start.ArgumentList.Add(argument);
        }

        var result = await HostCommand.RunAsync(start, TimeSpan.FromSeconds(60));
        var stderr = result.Stderr.Trim();
        Assert.DoesNotContain("\n", stderr, StringComparison.Ordinal); // one sentence
        Assert.DoesNotContain("   at ", result.Stdout + stderr, StringComparison.Ordinal); // no stack frame, on either stream
        Assert.DoesNotContain("Unhandled exception", result.Stdout + stderr, StringComparison.Ordinal);
        return (result.ExitCode, stderr);
    }
}
