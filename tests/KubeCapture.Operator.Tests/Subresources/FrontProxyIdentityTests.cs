using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using k8s;
using k8s.Models;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Subresources;
using KubeCapture.Operator.Tests.EndToEnd;
using KubeCapture.Operator.Tests.Ingest;
using KubeCapture.Testing.Kubernetes;
using Microsoft.AspNetCore.Http;

namespace KubeCapture.Operator.Tests.Subresources;

/// <summary>
/// Issue 20, 6: who the extension API believes a request comes from. The peer it logs is the
/// address kube-apiserver saw, never what a client wrote into <c>X-Forwarded-For</c>; the
/// SubjectAccessReview names the user's UID when kube-apiserver passes one on (and a client's own
/// <c>X-Remote-Uid</c> is never believed); a presented certificate never makes the operator fetch a
/// URL it names (AIA).
/// </summary>
[Collection(ApiServerClusterCollection.Name)]
public sealed class FrontProxyIdentityTests(SubresourcesCluster cluster)
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(90);
    private static readonly string Alice = KubeApiServer.UserToken("alice");
    private const string DownloadRole = $"{KubeCaptureInstall.Release}-kubecapture-download";

    [SkippableFact]
    public async Task A_download_logs_the_address_kube_apiserver_saw_never_a_client_supplied_X_Forwarded_For_and_a_client_supplied_UID_is_not_believed()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-xff");
        var pod = await cluster.StartPodAsync(ns, "api");
        await cluster.BindAsync(ns, "alice", DownloadRole);
        var created = await cluster.StartCaptureAsync(ns, "evidence", PacketCaptureEndToEndTests.Icmp("who downloads it", "api", maxPackets: 4), Long, pods: ["api"]);
        pod.PingFromClient(2);
        await cluster.Admin.WaitForPhaseAsync(ns, "evidence", CapturePhase.Succeeded, Long);
        var audit = new FileInfo(cluster.Install.Server.AuditLogPath).Length;

        // kube-apiserver 1.28 passes a client's own X-Forwarded-For on (appending the address it saw) and does not drop X-Remote-Uid.
        using var response = await cluster.GetAsync(Alice, SubresourcesCluster.PathOf(ns, "evidence", "pcap"), new Dictionary<string, string>
        {
            ["X-Forwarded-For"] = "198.51.100.66",
            ["X-Remote-Uid"] = "forged-uid",
        });
        await response.Content.ReadAsByteArrayAsync();
        var reviews = await ReviewsAsync(audit, "alice", ns);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var logged = cluster.Operator.Output.Split('\n').Single(l => l.Contains($"downloaded the pcap of {ns}/evidence pod api", StringComparison.Ordinal));
        Assert.Contains("from 127.0.0.1 via ", logged, StringComparison.Ordinal); // the test's address, as kube-apiserver saw it
        Assert.DoesNotContain("198.51.100.66", cluster.Operator.Output, StringComparison.Ordinal);
        var review = Assert.Single(reviews);
        Assert.False(review.TryGetProperty("uid", out var uid) && uid.GetString() == "forged-uid", review.ToString());
    }

    [SkippableFact]
    public async Task The_SubjectAccessReview_carries_the_UID_a_kube_apiserver_with_UID_headers_passes_on()
    {
        using var admin = cluster.Install.Server.AdminClient();
        var configMap = await admin.CoreV1.ReadNamespacedConfigMapAsync(RequestHeaderSettings.ConfigMapName, RequestHeaderSettings.ConfigMapNamespace);
        var headers = new HeaderDictionary { ["X-Remote-User"] = "carol", ["X-Remote-Group"] = "devs", ["X-Remote-Uid"] = "5f0c1d2e-uid-of-carol" };

        // This kube-apiserver (1.28) names no UID headers: a UID header is a client's and is not believed.
        Assert.False(configMap.Data.ContainsKey("requestheader-uid-headers"));
        Assert.Null(FrontProxyAuthenticator.UserFrom(headers, RequestHeaderSettings.FromConfigMap(configMap))!.Uid);
        // kube-apiserver 1.32 and later list them in the same ConfigMap (and set them, dropping what a client sent).
        configMap.Data["requestheader-uid-headers"] = """["X-Remote-Uid"]""";
        var user = FrontProxyAuthenticator.UserFrom(headers, RequestHeaderSettings.FromConfigMap(configMap))!;
        var audit = new FileInfo(cluster.Install.Server.AuditLogPath).Length;
        var (allowed, _) = await new AccessReview(admin).MayGetAsync(user, "kc-uid", "evidence", ExtensionApi.Pcap, CancellationToken.None);
        var review = Assert.Single(await ReviewsAsync(audit, "carol", "kc-uid"));

        Assert.Equal(("carol", "5f0c1d2e-uid-of-carol"), (user.Name, user.Uid));
        Assert.False(allowed);
        Assert.Equal("5f0c1d2e-uid-of-carol", review.GetProperty("uid").GetString());
        Assert.Equal(["devs"], review.GetProperty("groups").EnumerateArray().Select(g => g.GetString()));
    }

    [SkippableFact]
    public async Task A_client_certificate_naming_a_URL_for_its_issuer_is_refused_and_the_operator_fetches_nothing()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var fetched = 0;
        var accepting = Task.Run(async () =>
        {
            while (true)
            {
                using var connection = await listener.AcceptTcpClientAsync();
                Interlocked.Increment(ref fetched);
            }
        });
        using var certificate = LeafOfAnUnknownIssuerAt($"http://127.0.0.1:{port}/front-proxy-ca.crt");
        // offline: this client itself never fetches its certificate's issuer (it would, to send the chain): only the operator might.
        using var handler = new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions
            {
                ClientCertificateContext = SslStreamCertificateContext.Create(certificate, [], offline: true),
                RemoteCertificateValidationCallback = (_, _, _, _) => true,
            },
        };
        using var http = new HttpClient(handler);
        using var request = new HttpRequestMessage(HttpMethod.Get, $"https://{cluster.ExtensionAddress}:{cluster.ExtensionPort}{SubresourcesCluster.PathOf("kc-aia", "anything", "pcap")}");
        request.Headers.Add("X-Remote-User", "admin");
        request.Headers.Add("X-Remote-Group", "system:masters");

        using var response = await http.SendAsync(request);

        // Every chain built for this request (the TLS handshake's, the front-proxy check's) has been built by now: a download would have happened.
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        using var status = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("the client certificate CN=front-proxy-client is not signed by kube-apiserver's requestheader CA", status.RootElement.GetProperty("message").GetString());
        Assert.Equal(0, Volatile.Read(ref fetched));
        listener.Stop();
        await Assert.ThrowsAnyAsync<Exception>(() => accepting);
    }

    /// <summary>A client certificate named front-proxy-client, signed by a CA not presented, whose AIA says where to fetch that CA.</summary>
    private static X509Certificate2 LeafOfAnUnknownIssuerAt(string caIssuersUrl)
    {
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=front-proxy-ca", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign, true));
        using var ca = caRequest.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=front-proxy-client", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2")], false));
        request.CertificateExtensions.Add(new X509AuthorityInformationAccessExtension(null, [caIssuersUrl]));
        using var leaf = request.Create(ca, DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddDays(1), [1, 2, 3, 4]);
        using var withKey = leaf.CopyWithPrivateKey(key);
        return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
    }

    /// <summary>The specs of the SubjectAccessReviews kube-apiserver logged after <paramref name="mark"/> for <paramref name="user"/> in <paramref name="ns"/>.</summary>
    private async Task<List<JsonElement>> ReviewsAsync(long mark, string user, string ns)
    {
        var deadline = DateTime.UtcNow + Long;
        while (true)
        {
            var found = new List<JsonElement>();
            using (var stream = new FileStream(cluster.Install.Server.AuditLogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
            {
                stream.Seek(mark, SeekOrigin.Begin);
                using var reader = new StreamReader(stream);
                while (await reader.ReadLineAsync() is { } line)
                {
                    if (line.Length == 0 || line[^1] != '}' || !line.Contains("\"subjectaccessreviews\"", StringComparison.Ordinal))
                    {
                        continue;
                    }

                    using var entry = JsonDocument.Parse(line);
                    if (entry.RootElement.GetProperty("stage").GetString() == "ResponseComplete"
                        && entry.RootElement.TryGetProperty("requestObject", out var body)
                        && body.GetProperty("spec") is var spec
                        && spec.TryGetProperty("user", out var who) && who.GetString() == user
                        && spec.GetProperty("resourceAttributes").GetProperty("namespace").GetString() == ns)
                    {
                        found.Add(spec.Clone());
                    }
                }
            }

            if (found.Count > 0 || DateTime.UtcNow > deadline)
            {
                return found;
            }

            await Task.Delay(200);
        }
    }
}
