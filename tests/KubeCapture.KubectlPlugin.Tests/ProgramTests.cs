namespace KubeCapture.KubectlPlugin.Tests;

/// <summary>
/// Exit codes of the whole command line, run in-process: bad input is 2 and is found before the
/// cluster is asked (the kubeconfig given does not exist: reaching for it would be exit 1).
/// </summary>
public sealed class ProgramTests
{
    private const string NoCluster = "/nonexistent/kubeconfig";

    public static TheoryData<string[], string> BadInput => new()
    {
        { ["api", "icmp"], "kubectl-capture: --reason \"...\" is required: captures are audited (say why, e.g. --reason \"partner API calls time out\")" },
        { ["api", "--reason", "x", "tcp port 80 and"], "kubectl-capture: invalid filter 'tcp port 80 and': can't parse filter expression: syntax error" },
        { ["api", "--reason", "x", "-s", "300000"], "kubectl-capture: invalid snaplen '300000' for -s: use 0 (whole packet) or 1 to 262144 bytes" },
        { ["api", "--reason", "x", "-c", "0"], "kubectl-capture: invalid packet count '0' for -c: use a whole number greater than zero" },
        { ["api", "--reason", "x", "--duration", "forever"], "kubectl-capture: --duration: invalid duration 'forever': use a number with a unit, e.g. 500ms, 30s, 5m, 1h or 1m30s" },
        { ["api", "--reason", "x", "--duration", "0s"], "kubectl-capture: invalid duration '0s' for --duration: it must be greater than zero (there is no unbounded capture)" },
        { ["api", "--reason", "x", "--duration", "500us"], "kubectl-capture: invalid duration '500us' for --duration: it must be at least 1ms" },
        { ["api", "--reason", "x", "--duration", "25h"], "kubectl-capture: --duration '25h' is longer than the 24h a capture may run" },
        { ["api", "--reason", "x", "--max-bytes", "10"], "kubectl-capture: invalid size '10' for --max-bytes: a pcap needs at least 1024 bytes" },
        { ["api", "--reason", "x", "--max-bytes", "lots"], "kubectl-capture: --max-bytes: invalid size 'lots': use bytes or a number with a unit, e.g. 64MiB, 64Mi, 10MB" },
        { ["API_Pod", "--reason", "x"], "kubectl-capture: 'API_Pod' is not a pod name (lowercase letters, digits, '-' and '.'); a BPF filter goes after the pod, in quotes" },
        { ["api", "--reason", "x", "--name", "Bad Name"], "kubectl-capture: --name 'Bad Name' is not a valid name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters" },
        { ["api", "--bogus"], "kubectl-capture: unknown option '--bogus' (see kubectl capture --help)" },
        { ["api", "--reason", "x", "-nn", "port 80"], "kubectl-capture: -nn is not an option of kubectl capture: kubectl reads it as -n n, the namespace \"n\". tcpdump's -nn is not needed: captures never resolve names (tcpdump -r shows addresses and ports as captured). To name namespace n, write -n n" },
        { ["api", "--reason"], "kubectl-capture: option --reason needs a value" },
        { ["list", "extra"], "kubectl-capture: list takes no names (got 'extra'); for one capture: kubectl capture status NAME" },
        { ["list", "--wait"], "kubectl-capture: list does not take --wait (see kubectl capture --help)" },
        { ["status"], "kubectl-capture: status needs the capture's name: kubectl capture status NAME (kubectl capture list shows them)" },
        { ["stop", "a", "b"], "kubectl-capture: stop takes one capture name, got 2: a b" },
        { ["download"], "kubectl-capture: download needs the capture's name: kubectl capture download NAME (kubectl capture list shows them)" },
        { ["download", "x", "-c", "5"], "kubectl-capture: download does not take --count (see kubectl capture --help)" },
        { ["follow", "x", "-o", "f"], "kubectl-capture: follow does not take --output (see kubectl capture --help)" },
        { ["verify"], "kubectl-capture: verify takes a pcap and, optionally, its manifest: kubectl capture verify FILE.pcap [FILE.pcap.manifest.json] [--public-key KEY.pem]" },
        { ["verify", "/nonexistent/x.pcap"], "kubectl-capture: no such file: '/nonexistent/x.pcap'" },
        { [], "kubectl-capture: nothing to do: kubectl capture POD --reason \"...\" ['BPF FILTER'], or list, status, stop, snapshot, download, follow, verify (see kubectl capture --help)" },
    };

    [Theory]
    [MemberData(nameof(BadInput))]
    public async Task Bad_input_is_exit_2_with_one_line_naming_the_problem_before_the_cluster_is_asked(string[] args, string message)
    {
        var (exit, stdout, stderr) = await RunAsync(["--kubeconfig", NoCluster, .. args]);

        Assert.Equal(2, exit);
        Assert.Equal(message, stderr.Trim());
        Assert.Equal("", stdout);
    }

    [Fact]
    public async Task Verify_defaults_the_manifest_to_the_one_download_writes_beside_the_file()
    {
        var pcap = Path.GetTempFileName();
        try
        {
            var (exit, _, stderr) = await RunAsync(["verify", pcap]);

            Assert.Equal(2, exit);
            Assert.Equal($"kubectl-capture: no such file: '{pcap}.manifest.json'", stderr.Trim());
        }
        finally
        {
            File.Delete(pcap);
        }
    }

    [Fact]
    public async Task Follow_to_a_terminal_is_refused_with_exit_2_a_binary_pcap_would_garble_it()
    {
        var (exit, _, stderr) = await RunAsync(["--kubeconfig", NoCluster, "follow", "live"], stdoutRedirected: false);

        Assert.Equal(2, exit);
        Assert.Equal("kubectl-capture: follow writes a binary pcap: pipe it into a reader, e.g. kubectl capture follow live | tcpdump -nn -l -r -", stderr.Trim());
    }

    [Fact]
    public async Task A_download_never_overwrites_a_file_exit_2_before_the_cluster_is_asked()
    {
        var existing = Path.GetTempFileName();
        try
        {
            var (exit, _, stderr) = await RunAsync(["--kubeconfig", NoCluster, "download", "done", "-o", existing]);

            Assert.Equal(2, exit);
            Assert.Equal($"kubectl-capture: '{existing}' already exists: choose another -o FILE, or move it away (a download never overwrites evidence)", stderr.Trim());
        }
        finally
        {
            File.Delete(existing);
        }
    }

    [Fact]
    public async Task Good_input_without_a_reachable_kubeconfig_is_exit_1_naming_the_file()
    {
        var (exit, _, stderr) = await RunAsync(["--kubeconfig", NoCluster, "api", "--reason", "why", "-c", "10", "tcp port 443"]);

        Assert.Equal(1, exit);
        Assert.Equal($"kubectl-capture: --kubeconfig '{NoCluster}': no such file", stderr.Trim());
    }

    [Fact]
    public async Task Help_lists_every_command_and_the_field_guides_scenarios()
    {
        var (exit, stdout, _) = await RunAsync(["--help"]);

        Assert.Equal(0, exit);
        foreach (var command in new[] { "kubectl capture list", "kubectl capture status NAME", "kubectl capture stop NAME", "kubectl capture download NAME", "kubectl capture follow NAME", "kubectl capture verify FILE.pcap" })
        {
            Assert.Contains(command, stdout, StringComparison.Ordinal);
        }

        Assert.Contains("'host 203.0.113.40 and tcp port 443'", stdout, StringComparison.Ordinal); // are the partner's calls reaching us?
        Assert.Contains("Who sent the RST?", stdout, StringComparison.Ordinal);
        Assert.Contains("MTU blackhole", stdout, StringComparison.Ordinal);
        Assert.Contains("| wireshark -k -i -", stdout, StringComparison.Ordinal);
    }

    private static async Task<(int Exit, string Stdout, string Stderr)> RunAsync(string[] args, bool stdoutRedirected = true)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exit = await Program.RunAsync(args, stdout, stderr, () => new MemoryStream(), stdoutRedirected, _ => null, CancellationToken.None);
        return (exit, stdout.ToString(), stderr.ToString());
    }
}
