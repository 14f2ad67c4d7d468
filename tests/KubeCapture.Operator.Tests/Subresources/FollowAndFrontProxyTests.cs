using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Tests.EndToEnd;
using KubeCapture.Operator.Tests.Ingest;
using KubeCapture.Testing.Kubernetes;
using KubeCapture.Testing.Pki;

namespace KubeCapture.Operator.Tests.Subresources;

/// <summary>Live follow through kube-apiserver, and the operator refusing whatever does not come through its front proxy.</summary>
[Collection(ApiServerClusterCollection.Name)]
public sealed class FollowAndFrontProxyTests(SubresourcesCluster cluster)
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(90);
    private static readonly string Alice = KubeApiServer.UserToken("alice");
    private const string DownloadRole = $"{KubeCaptureInstall.Release}-kubecapture-download";

    [SkippableFact]
    public async Task Follow_during_a_capture_is_a_pcap_tcpdump_reads_while_packets_arrive_and_it_ends_cleanly_when_the_capture_stops()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-follow");
        var pod = await cluster.StartPodAsync(ns, "api");
        await cluster.BindAsync(ns, "alice", DownloadRole);
        var created = await cluster.StartCaptureAsync(ns, "live", CaptureDownloadTestsSpec("60s"), Long, pods: ["api"]);

        var (follow, lines) = cluster.StartFollowIntoTcpdump(Alice, SubresourcesCluster.PathOf(ns, "live", "follow"));
        using var _ = follow;
        var pings = Task.Run(() => pod.PingFromClient(40, interval: 0.2));
        var seenWhileRunning = await WaitForIcmpLinesAsync(lines, atLeast: 6);
        var stillRunning = await cluster.Admin.GetPacketCaptureAsync(ns, "live");
        await pings;
        await cluster.Admin.StopPacketCaptureAsync(ns, "live");
        var exited = follow.WaitForExitAsync();
        var finished = await Task.WhenAny(exited, Task.Delay(Long)) == exited;
        var done = await cluster.Admin.WaitForPhaseAsync(ns, "live", CapturePhase.Succeeded, Long);
        var stored = await cluster.DownloadAsync(done.Status!.Targets[0].Artifact!);

        Assert.Equal(CapturePhase.Running, stillRunning!.Status!.Phase);
        Assert.True(seenWhileRunning >= 6);
        Assert.True(finished, "the follow did not end when the capture stopped\n" + cluster.OperatorLog());
        Assert.True(follow.ExitCode == 0, await follow.StandardError.ReadToEndAsync());
        var followed = Icmp(await File.ReadAllLinesAsync(lines));
        var all = Icmp(Evidence.TcpdumpLines(stored));
        Assert.True(followed.Count >= 40, $"{followed.Count} ICMP lines followed");
        Assert.Equal(all.TakeLast(followed.Count), followed); // whole records from where the follow joined, to the end
    }

    [SkippableFact]
    public async Task Follow_of_a_finished_capture_is_its_stored_pcap()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-follow-done");
        var pod = await cluster.StartPodAsync(ns, "api");
        await cluster.BindAsync(ns, "alice", DownloadRole);
        var spec = CaptureDownloadTestsSpec("60s");
        spec.MaxPackets = 4;
        var created = await cluster.StartCaptureAsync(ns, "done", spec, Long, pods: ["api"]);
        pod.PingFromClient(2);
        var done = await cluster.Admin.WaitForPhaseAsync(ns, "done", CapturePhase.Succeeded, Long);

        var (exit, stderr, file) = await cluster.KubectlRawAsync(Alice, SubresourcesCluster.PathOf(ns, "done", "follow"));

        Assert.True(exit == 0, stderr);
        Assert.Equal(await File.ReadAllBytesAsync(await cluster.DownloadAsync(done.Status!.Targets[0].Artifact!)), await File.ReadAllBytesAsync(file));
    }

    [SkippableFact]
    public async Task The_extension_API_is_Available_with_discovery_listing_the_three_read_subresources_and_snapshot_under_a_parent_with_no_verbs()
    {
        var (exit, stderr, file) = await cluster.KubectlRawAsync(Alice, "/apis/subresources.kubecapture.io/v1alpha1");

        Assert.True(exit == 0, stderr);
        using var list = JsonDocument.Parse(await File.ReadAllTextAsync(file));
        Assert.Equal("APIResourceList", list.RootElement.GetProperty("kind").GetString());
        var resources = list.RootElement.GetProperty("resources").EnumerateArray().ToList();
        Assert.Equal(["packetcaptures", "packetcaptures/pcap", "packetcaptures/manifest", "packetcaptures/follow", "packetcaptures/snapshot"], resources.Select(r => r.GetProperty("name").GetString()));
        // Nothing lists, watches or deletes the parent here: the garbage collector and namespace deletion pass it by.
        Assert.Equal(0, resources[0].GetProperty("verbs").GetArrayLength());
        Assert.All(resources.Skip(1).Take(3), r => Assert.Equal(["get"], r.GetProperty("verbs").EnumerateArray().Select(v => v.GetString())));
        Assert.Equal(["create"], resources[4].GetProperty("verbs").EnumerateArray().Select(v => v.GetString())); // a snapshot by hand is a POST
    }

    public static TheoryData<string> Impostors => ["no certificate", "another CA's certificate named front-proxy-client", "a kube-apiserver user's client certificate"];

    [SkippableTheory]
    [MemberData(nameof(Impostors))]
    public async Task A_request_straight_to_the_operator_not_through_the_front_proxy_is_refused_401(string impostor)
    {
        var (ns, _) = (await cluster.CreateNamespaceAsync("kc-direct"), 0);
        using var otherCa = CertificateAuthority.Create("front-proxy-ca");
        using var certificate = impostor switch
        {
            "no certificate" => null,
            "another CA's certificate named front-proxy-client" => otherCa.Issue("front-proxy-client", clientAuth: true),
            _ => cluster.Install.Server.ClientCa!.Issue("alice", clientAuth: true, organizations: ["system:masters"]),
        };
        using var handler = new HttpClientHandler { ServerCertificateCustomValidationCallback = HttpClientHandler.DangerousAcceptAnyServerCertificateValidator };
        if (certificate is not null)
        {
            handler.ClientCertificateOptions = ClientCertificateOption.Manual;
            handler.ClientCertificates.Add(X509CertificateLoader.LoadPkcs12(certificate.Certificate.Export(X509ContentType.Pkcs12), null));
        }

        using var http = new HttpClient(handler);
        using var request = new HttpRequestMessage(HttpMethod.Get, $"https://{cluster.ExtensionAddress}:{cluster.ExtensionPort}{SubresourcesCluster.PathOf(ns, "anything", "pcap")}");
        request.Headers.Add("X-Remote-User", "admin");
        request.Headers.Add("X-Remote-Group", "system:masters");

        using var response = await http.SendAsync(request);
        using var status = JsonDocument.Parse(await response.Content.ReadAsStringAsync());

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("Status", status.RootElement.GetProperty("kind").GetString());
        Assert.Equal(certificate is null
            ? "no client certificate: this API is served only through kube-apiserver (kubectl get --raw /apis/subresources.kubecapture.io/...)"
            : $"the client certificate {certificate.Certificate.Subject} is not signed by kube-apiserver's requestheader CA", status.RootElement.GetProperty("message").GetString());
    }

    [SkippableFact]
    public async Task The_extension_API_answers_whatever_port_the_Host_header_names_as_through_a_Service_on_443()
    {
        // Without aggregator routing kube-apiserver reaches the APIService through its Service: the
        // Host header then says svc:443, not the port the operator listens on.
        using var handler = new HttpClientHandler { ServerCertificateCustomValidationCallback = HttpClientHandler.DangerousAcceptAnyServerCertificateValidator };
        using var http = new HttpClient(handler);
        using var request = new HttpRequestMessage(HttpMethod.Get, $"https://{cluster.ExtensionAddress}:{cluster.ExtensionPort}/apis/subresources.kubecapture.io");
        request.Headers.Host = "kc-kubecapture-api.kubecapture-system.svc:443";

        using var response = await http.SendAsync(request);

        // Reached the API (which wants the front proxy's certificate), not "no such route".
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Contains("no client certificate", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    private static PacketCaptureSpec CaptureDownloadTestsSpec(string duration) => EndToEnd.PacketCaptureEndToEndTests.Icmp("follow it live", "api", duration: duration);

    private static List<string> Icmp(IEnumerable<string> lines) =>
        lines.Where(l => l.Contains("ICMP echo", StringComparison.Ordinal)).ToList();

    private static async Task<int> WaitForIcmpLinesAsync(string file, int atLeast)
    {
        var deadline = DateTime.UtcNow + Long;
        while (true)
        {
            var count = Icmp(await File.ReadAllLinesAsync(file)).Count;
            if (count >= atLeast)
            {
                return count;
            }

            Assert.True(DateTime.UtcNow < deadline, $"only {count} ICMP lines arrived live");
            await Task.Delay(100);
        }
    }
}
