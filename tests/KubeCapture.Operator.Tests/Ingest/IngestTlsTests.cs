using System.Globalization;
using System.Text;
using KubeCapture.Contracts;
using KubeCapture.Operator.Ingest;
using KubeCapture.Testing.Netns;
using KubeCapture.Testing.Pcap;

namespace KubeCapture.Operator.Tests.Ingest;

/// <summary>
/// The ingest over TLS, agent against the real operator ingest: the agent trusts only the CA it is
/// given, checks the name, refuses a plain h2c server, and the connection really is encrypted
/// (tcpdump of the ingest connection itself).
/// </summary>
public sealed class IngestTlsTests
{
    [Fact]
    public async Task AgentGivenAnotherCaRefusesTheIngestsCertificateExitsOneNamingTheUnknownCaAndNothingIsStored()
    {
        var root = Directory.CreateTempSubdirectory("kcI-tls-ca-").FullName;
        await using var host = await OperatorHost.StartInProcessAsync(new Dictionary<string, string> { ["Storage:LocalPath"] = root });
        await using var traffic = new LoopbackTraffic();
        var stranger = IngestCertificateFiles.Issue("127.0.0.1", "some-other-ca").AuthorityPem;

        await using var agent = await AgentRun.StartAsync(host.IngestUrl, stranger, new CaptureIdentity("uid-tls-ca", "default", "other-ca", "web-0"), traffic.Filter);

        Assert.Equal(1, await agent.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains($"the capture was not stored: the ingest at {host.IngestUrl} presented a certificate not issued by the CA given in --ingest-ca-pem (subject CN=127.0.0.1, issuer CN=kubecapture-test-ingest-ca): unknown CA, refusing to send the capture", agent.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("reconnecting", agent.Output, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task AgentReachingTheIngestByANameItsCertificateDoesNotCarryRefusesWithANameMismatch()
    {
        var root = Directory.CreateTempSubdirectory("kcI-tls-name-").FullName;
        await using var host = await OperatorHost.StartInProcessAsync(new Dictionary<string, string> { ["Storage:LocalPath"] = root });
        await using var traffic = new LoopbackTraffic();
        var byName = new Uri($"https://localhost:{host.IngestPort}");

        await using var agent = await AgentRun.StartAsync(byName, host.IngestCaPem, new CaptureIdentity("uid-tls-name", "default", "by-name", "web-0"), traffic.Filter);

        Assert.Equal(1, await agent.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("the capture was not stored: the ingest's certificate is not for localhost (it is for 127.0.0.1) (subject CN=127.0.0.1, issuer CN=kubecapture-test-ingest-ca): name mismatch, refusing to send the capture", agent.Output, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task AgentAskedForTlsRefusesAPlainH2cIngestInsteadOfFallingBackToPlainText()
    {
        var root = Directory.CreateTempSubdirectory("kcI-tls-plain-").FullName;
        await using var host = await OperatorHost.StartInProcessAsync(new Dictionary<string, string> { ["Storage:LocalPath"] = root, ["Ingest:Tls"] = "false" });
        await using var traffic = new LoopbackTraffic();
        var asTls = new Uri($"https://127.0.0.1:{host.IngestPort}");
        var ca = IngestCertificateFiles.Issue("127.0.0.1").AuthorityPem;

        await using var agent = await AgentRun.StartAsync(asTls, ca, new CaptureIdentity("uid-tls-plain", "default", "plain", "web-0"), traffic.Filter);

        Assert.Equal(1, await agent.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains($"the capture was not stored: the ingest at {asTls} answered in plain text, not TLS (an h2c server?): refusing to send the capture over an unencrypted connection", agent.Output, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task UntilItsCertificateLoadsTheTlsIngestIsNotReadyAndReadyzSaysWhy()
    {
        var root = Directory.CreateTempSubdirectory("kcI-tls-ready-").FullName;
        await using var host = await OperatorHost.StartInProcessAsync(new Dictionary<string, string>
        {
            ["Storage:LocalPath"] = root,
            ["ServingCertificate:Mode"] = "Mounted",
            ["ServingCertificate:CertificateFile"] = Path.Combine(root, "missing", "tls.crt"),
            ["ServingCertificate:KeyFile"] = Path.Combine(root, "missing", "tls.key"),
        }, waitForIngest: false);
        using var http = new HttpClient();

        using var response = await http.GetAsync($"http://127.0.0.1:{host.HttpPort}/readyz");

        Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("Unhealthy\ningest-tls: the ingest's TLS certificate is not loaded yet (ServingCertificate; see the operator's log)\n", await response.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task TheIngestConnectionCarriesNeitherThePcapNorItsPacketsNorTheTokenInClearWithTlsButDoesWithTlsOff(bool tls)
    {
        await using var lab = await NetnsLab.CreateAsync("kcT");
        using var link = await NodeLink.ConnectAsync(lab.Server);
        var root = Directory.CreateTempSubdirectory("kcI-tls-wire-").FullName;
        var settings = new Dictionary<string, string> { ["Storage:LocalPath"] = root, ["Storage:PartSize"] = "65536" };
        if (!tls)
        {
            settings["Ingest:Tls"] = "false";
        }

        await using var host = await OperatorHost.StartInProcessAsync(settings, link.NodeAddress);
        var target = new CaptureIdentity("uid-wire-" + tls.ToString(CultureInfo.InvariantCulture), "shop", "wire", "web-0");
        var token = new CaptureTokenIssuer(OperatorHost.TokenSecret).Issue(target);
        var marker = "kcT-payload-marker-" + Guid.NewGuid().ToString("N");
        var wire = Path.Combine(Directory.CreateTempSubdirectory("kcT-wire-").FullName, "ingest-connection.pcap");
        await using var server = await lab.Server.StartHttpServerAsync(8080, new Dictionary<string, int> { ["index.html"] = 100 });
        using var tcpdump = await TcpdumpCapture.StartAsync(lab.Server, link.PodInterface, wire, $"tcp port {host.IngestPort}", snaplen: 0);

        await using var agent = await AgentRun.StartInPodAsync(lab.Server.Name, host, target, link.PodInterface, "0", "tcp port 8080");
        using (var http = new HttpClient())
        {
            for (var i = 0; i < 3; i++)
            {
                await http.GetAsync($"http://{link.PodAddress}:8080/{marker}"); // 404, with the marker in the request and the answer
            }
        }

        await Task.Delay(500);
        agent.Signal("TERM");
        Assert.Equal(0, await agent.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        await tcpdump.StopAsync();

        // What was stored holds the marker: the packets with it went over the ingest connection.
        var stored = File.ReadAllBytes(Path.Combine(root, "captures", "shop", "wire", "web-0.pcap"));
        Assert.Equal(AgentRun.ReportedSha256(agent), Evidence.Sha256Of(Path.Combine(root, "captures", "shop", "wire", "web-0.pcap")));
        Assert.True(Contains(stored, Encoding.ASCII.GetBytes(marker)), "the stored pcap holds the marker");
        var connection = File.ReadAllBytes(wire)[24..]; // tcpdump's own file header is a pcap magic too
        Assert.True(connection.Length > stored.Length, $"tcpdump saw the ingest connection ({connection.Length} bytes for a {stored.Length}-byte pcap)");
        byte[] pcapMagic = [0xd4, 0xc3, 0xb2, 0xa1];
        Assert.Equal(!tls, Contains(connection, pcapMagic));
        Assert.Equal(!tls, Contains(connection, Encoding.ASCII.GetBytes(marker)));
        Assert.Equal(!tls, Contains(connection, Encoding.ASCII.GetBytes(token)));
    }

    private static bool Contains(byte[] haystack, byte[] needle) => haystack.AsSpan().IndexOf(needle) >= 0;
}
