using KubeCapture.Agent.Cli;

namespace KubeCapture.Agent.Tests.Ingest;

public sealed class ClusterCommandLineTests
{
    private static readonly DateTime Now = new(2026, 1, 2, 3, 4, 5, DateTimeKind.Utc);

    private static readonly string[] OperatorArgs =
    [
        "--ingest", "http://kubecapture-ingest.kubecapture:8081", "--capture-uid", "0b6f3c1e", "--capture-namespace", "payments",
        "--capture-name", "partner-timeouts", "--pod", "api-7d9f", "-i", "any", "-s", "128", "-c", "500", "--duration", "60s",
        "--max-bytes", "64MiB", "host 203.0.113.40 and tcp port 443",
    ];

    [Fact]
    public void ArgumentsTheOperatorGivesMakeAClusterModeRequestWithTheTokenFromTheEnvironment()
    {
        var request = CommandLine.ParseCapture(OperatorArgs, Now, name => name == "KUBECAPTURE_TOKEN" ? "tok-env" : null);

        var ingest = Assert.IsType<KubeCapture.Agent.Ingest.IngestTarget>(request.Ingest);
        Assert.Equal(new Uri("http://kubecapture-ingest.kubecapture:8081"), ingest.Url);
        Assert.Equal("tok-env", ingest.Token);
        Assert.Equal(("0b6f3c1e", "payments", "partner-timeouts", "api-7d9f"), (ingest.CaptureUid, ingest.Namespace, ingest.CaptureName, ingest.Pod));
        Assert.Null(ingest.Retention);
        Assert.Equal(500, request.Options.MaxPackets);
        Assert.Equal(128, request.Options.Snaplen);
        Assert.Equal("host 203.0.113.40 and tcp port 443", request.Options.Filter);
    }

    [Fact]
    public void TokenFlagWinsOverTheEnvironmentAndRetentionIsParsed()
    {
        var request = CommandLine.ParseCapture([.. OperatorArgs, "--token", "tok-flag", "--retention", "168h"], Now, _ => "tok-env");
        Assert.Equal("tok-flag", request.Ingest!.Token);
        Assert.Equal(TimeSpan.FromHours(168), request.Ingest.Retention);
    }

    [Theory]
    [InlineData("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]
    [InlineData("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", null)] // W3C: lowercase hex only
    [InlineData("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", null)] // an unknown version
    [InlineData("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 x", null)]
    [InlineData("tok-env", null)]
    [InlineData(null, null)]
    public void A_W3C_traceparent_in_TRACEPARENT_is_passed_on_to_the_upload_and_anything_else_is_dropped_without_failing_the_capture(string? environment, string? expected)
    {
        var request = CommandLine.ParseCapture(OperatorArgs, Now, name => name switch { "KUBECAPTURE_TOKEN" => "tok-env", "TRACEPARENT" => environment, _ => null });

        Assert.Equal(expected, request.Ingest!.TraceParent);
    }

    [Theory]
    [InlineData(new[] { "--ingest", "http://x:1", "--capture-uid", "u", "--capture-namespace", "n", "--capture-name", "c", "--pod", "p" }, "needs the capture token")]
    [InlineData(new[] { "--ingest", "http://x:1", "--token", "t", "--capture-uid", "u", "--capture-namespace", "n", "--pod", "p" }, "cluster mode needs --capture-name")]
    [InlineData(new[] { "--ingest", "ftp://x", "--token", "t" }, "invalid --ingest 'ftp://x'")]
    [InlineData(new[] { "--token", "t", "--pod", "p" }, "only apply to cluster mode: add --ingest URL")]
    [InlineData(new[] { "--ingest", "http://x:1", "-w", "out.pcap", "--token", "t" }, "-w and --ingest cannot be combined")]
    [InlineData(new[] { "--ingest", "http://x:1", "--token", "t", "--capture-uid", "u", "--capture-namespace", "n", "--capture-name", "c", "--pod", "p", "--retention", "0s" }, "invalid --retention")]
    public void IncompleteOrContradictoryClusterArgumentsAreRefusedWithTheReason(string[] args, string message)
    {
        var error = Assert.Throws<UsageException>(() => CommandLine.ParseCapture(args, Now, _ => null));
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("https://x:1", null, "--ingest https://x:1 is TLS: give --ingest-ca-pem CA")]
    [InlineData("http://x:1", "CA", "--ingest-ca-pem is for a TLS ingest, but --ingest http://x:1 is plain h2c: use https://")]
    [InlineData("https://x:1", "not base64 and no pem!", "invalid --ingest-ca-pem: neither PEM (-----BEGIN CERTIFICATE-----) nor PEM in base64")]
    [InlineData("https://x:1", "aGVsbG8=", "invalid --ingest-ca-pem: it holds no PEM certificate")]
    public void ATlsIngestNeedsTheCaAndAPlainOneRefusesIt(string url, string? ca, string message)
    {
        string[] args = ["--ingest", url, .. ca is null ? Array.Empty<string>() : ["--ingest-ca-pem", ca == "CA" ? Pem() : ca],
            "--token", "t", "--capture-uid", "u", "--capture-namespace", "n", "--capture-name", "c", "--pod", "p"];
        var error = Assert.Throws<UsageException>(() => CommandLine.ParseCapture(args, Now, _ => null));
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TheCaIsTakenAsPemOrAsPemInBase64(bool base64)
    {
        var pem = Pem();
        var given = base64 ? Convert.ToBase64String(System.Text.Encoding.ASCII.GetBytes(pem)) : pem;
        var request = CommandLine.ParseCapture(["--ingest", "https://kc-ingest.ops.svc:8081", "--ingest-ca-pem", given, "--token", "t",
            "--capture-uid", "u", "--capture-namespace", "n", "--capture-name", "c", "--pod", "p"], Now, _ => null);

        var authority = Assert.Single(request.Ingest!.Authority!);
        Assert.Equal("CN=test-ingest-ca", authority.Subject);
    }

    private static string Pem()
    {
        using var key = System.Security.Cryptography.ECDsa.Create();
        var request = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=test-ingest-ca", key, System.Security.Cryptography.HashAlgorithmName.SHA256);
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddDays(1));
        return certificate.ExportCertificatePem();
    }

    [Fact]
    public void LocalModeIsUnchangedWithoutClusterArguments()
    {
        var request = CommandLine.ParseCapture(["-w", "out.pcap", "tcp"], Now, _ => "ignored");
        Assert.Null(request.Ingest);
        Assert.Equal("out.pcap", request.OutputPath);
    }
}
