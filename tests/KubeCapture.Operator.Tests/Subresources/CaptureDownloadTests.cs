using System.Net;
using System.Text.Json;
using k8s;
using k8s.Models;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Custody;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Subresources;
using KubeCapture.Operator.Tests.EndToEnd;
using KubeCapture.Operator.Tests.Ingest;
using KubeCapture.Testing.Kubernetes;

namespace KubeCapture.Operator.Tests.Subresources;

/// <summary>
/// The pcap back through the Kubernetes API: the real kube-apiserver authenticates the user, checks
/// RBAC on packetcaptures/pcap|manifest|follow and proxies to the operator's extension API, which
/// verifies the front proxy, asks a SubjectAccessReview and streams from s3rver.
/// </summary>
[Collection(ApiServerClusterCollection.Name)]
public sealed class CaptureDownloadTests(SubresourcesCluster cluster)
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(90);
    private static readonly string Alice = KubeApiServer.UserToken("alice");
    private static readonly string Bob = KubeApiServer.UserToken("bob");
    private static readonly string Mallory = KubeApiServer.UserToken("mallory");

    private const string DownloadRole = $"{KubeCaptureInstall.Release}-kubecapture-download";
    private const string ViewRole = $"{KubeCaptureInstall.Release}-kubecapture-view";

    [SkippableFact]
    public async Task A_user_with_the_download_role_edit_aggregates_gets_a_finished_capture_with_kubectl_get_raw_byte_for_byte_as_stored_with_its_SHA256()
    {
        var (ns, done) = await FinishedCaptureAsync("kc-dl", "finished");
        await cluster.BindAsync(ns, "alice", DownloadRole);
        var artifact = Assert.Single(done.Status!.Targets).Artifact!;

        var (exit, stderr, file) = await cluster.KubectlRawAsync(Alice, SubresourcesCluster.PathOf(ns, "finished", "pcap"));
        using var response = await cluster.GetAsync(Alice, SubresourcesCluster.PathOf(ns, "finished", "pcap", pod: "api"));
        var stored = await cluster.DownloadAsync(artifact);

        Assert.True(exit == 0, stderr + cluster.OperatorLog());
        Assert.Equal(await File.ReadAllBytesAsync(stored), await File.ReadAllBytesAsync(file));
        Assert.Equal(artifact.Sha256, Evidence.Sha256Of(file));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(artifact.Sha256, Assert.Single(response.Headers.GetValues(ExtensionApi.Sha256Header)));
        Assert.Equal(ExtensionApi.PcapContentType, response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(artifact.Size, response.Content.Headers.ContentLength);
        Assert.Equal(6, Evidence.TcpdumpLines(file).Count(l => l.Contains("ICMP echo", StringComparison.Ordinal)));
    }

    [SkippableFact]
    public async Task The_manifest_is_the_stored_signed_envelope_byte_for_byte_and_every_download_is_an_Event_naming_the_user()
    {
        var (ns, done) = await FinishedCaptureAsync("kc-dl-man", "audited");
        await cluster.BindAsync(ns, "alice", DownloadRole);

        var (exit, stderr, file) = await cluster.KubectlRawAsync(Alice, SubresourcesCluster.PathOf(ns, "audited", "manifest"));
        var (pcapExit, _, _) = await cluster.KubectlRawAsync(Alice, SubresourcesCluster.PathOf(ns, "audited", "pcap"));

        Assert.True(exit == 0, stderr);
        Assert.Equal(0, pcapExit);
        var artifactUri = done.Status!.Targets[0].Artifact!.Uri;
        var storedManifest = await cluster.DownloadAsync(artifactUri.Replace(".pcap", ".manifest.json", StringComparison.Ordinal), ".json");
        Assert.Equal(await File.ReadAllBytesAsync(storedManifest), await File.ReadAllBytesAsync(file)); // the signed envelope, as stored
        using var manifest = JsonDocument.Parse(Convert.FromBase64String(SignedManifest.FromJson(await File.ReadAllBytesAsync(file)).Payload));
        Assert.Equal(done.Status!.Targets[0].Artifact!.Sha256, manifest.RootElement.GetProperty("sha256").GetString());
        Assert.Equal("api", manifest.RootElement.GetProperty("pod").GetString());
        var events = await WaitForEventsAsync(ns, "audited", e => e.Reason == "Downloaded");
        Assert.Contains(events, e => e.Reason == "ManifestRead" && e.Message.StartsWith("alice (groups kcapi-users,system:authenticated)", StringComparison.Ordinal));
        var downloaded = events.Single(e => e.Reason == "Downloaded");
        Assert.Contains("alice (groups kcapi-users,system:authenticated) downloaded the pcap of pod api", downloaded.Message, StringComparison.Ordinal);
        Assert.Contains(done.Status.Targets[0].Artifact!.Sha256, downloaded.Message, StringComparison.Ordinal);
        Assert.Contains("alice (groups kcapi-users,system:authenticated) downloaded the pcap of", cluster.OperatorLog(200), StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task A_view_user_and_a_user_of_another_namespace_get_403_from_kube_apiserver()
    {
        var (ns, _) = await FinishedCaptureAsync("kc-dl-403", "secret");
        var other = await cluster.CreateNamespaceAsync("kc-dl-other");
        await cluster.BindAsync(ns, "bob", ViewRole);
        await cluster.BindAsync(other, "mallory", DownloadRole);

        var (viewExit, viewError, _) = await cluster.KubectlRawAsync(Bob, SubresourcesCluster.PathOf(ns, "secret", "pcap"));
        var (otherExit, otherError, _) = await cluster.KubectlRawAsync(Mallory, SubresourcesCluster.PathOf(ns, "secret", "follow"));
        using var canView = await cluster.GetAsync(Bob, $"/apis/kubecapture.io/v1alpha1/namespaces/{ns}/packetcaptures/secret");

        Assert.Equal(HttpStatusCode.OK, canView.StatusCode); // bob may see the capture, just not its packets
        Assert.Equal(1, viewExit);
        Assert.Contains($"Error from server (Forbidden): packetcaptures.subresources.kubecapture.io \"secret\" is forbidden: User \"bob\" cannot get resource \"packetcaptures/pcap\" in API group \"subresources.kubecapture.io\" in the namespace \"{ns}\"", viewError, StringComparison.Ordinal);
        Assert.Equal(1, otherExit);
        Assert.Contains($"User \"mallory\" cannot get resource \"packetcaptures/follow\" in API group \"subresources.kubecapture.io\" in the namespace \"{ns}\"", otherError, StringComparison.Ordinal);
        // kube-apiserver refused them: the requests never reached the operator.
        Assert.DoesNotContain($"of {ns}/secret", cluster.OperatorLog(400), StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task Kubectl_auth_can_i_answers_truthfully_for_the_pcap_subresource_and_kubectl_get_packetcaptures_still_means_the_captures()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-dl-can-i");
        await cluster.BindAsync(ns, "alice", DownloadRole);
        await cluster.BindAsync(ns, "bob", ViewRole);
        string[] canI = ["auth", "can-i", "get", "packetcaptures.subresources.kubecapture.io", "--subresource=pcap", "-n", ns];
        var server = cluster.Install.Server;

        var alice = await server.KubectlAsync(Alice, canI);
        var bob = await server.KubectlAsync(Bob, canI);
        var followAlice = await server.KubectlAsync(Alice, ["auth", "can-i", "get", "packetcaptures.subresources.kubecapture.io", "--subresource=follow", "-n", ns]);
        await cluster.Admin.CreatePacketCaptureAsync(ns, "listed", PacketCaptureEndToEndTests.Icmp("is it listed", "nobody"));
        var get = await server.KubectlAsync(server.AdminToken, ["get", "packetcaptures", "-n", ns, "-o", "name"]);

        Assert.Equal((0, "yes"), (alice.ExitCode, alice.Stdout.Trim()));
        Assert.Equal("", alice.Stderr.Trim()); // no "the server doesn't have a resource type" warning: discovery lists the parent
        Assert.Equal((1, "no"), (bob.ExitCode, bob.Stdout.Trim()));
        Assert.Equal("", bob.Stderr.Trim());
        Assert.Equal("yes", followAlice.Stdout.Trim());
        // The parent the extension API now lists does not take the name over from the CRD's resource.
        Assert.True(get.ExitCode == 0, get.Stderr);
        Assert.Equal("packetcapture.kubecapture.io/listed", get.Stdout.Trim());
    }

    [SkippableFact]
    public async Task Unknown_capture_and_unknown_pod_are_404_with_what_was_asked()
    {
        var (ns, _) = await FinishedCaptureAsync("kc-dl-404", "known");
        await cluster.BindAsync(ns, "alice", DownloadRole);

        var (noCapture, noCaptureError, _) = await cluster.KubectlRawAsync(Alice, SubresourcesCluster.PathOf(ns, "unknown", "pcap"));
        var (noPod, noPodError, _) = await cluster.KubectlRawAsync(Alice, SubresourcesCluster.PathOf(ns, "known", "pcap", pod: "nope"));

        Assert.Equal(1, noCapture);
        Assert.Contains("Error from server (NotFound): packetcaptures.kubecapture.io \"unknown\" not found", noCaptureError, StringComparison.Ordinal);
        Assert.Equal(1, noPod);
        Assert.Contains("Error from server (NotFound): capture known has no target pod \"nope\" (its targets: api)", noPodError, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task A_running_capture_answers_409_use_follow()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-dl-409");
        await cluster.StartPodAsync(ns, "api");
        await cluster.BindAsync(ns, "alice", DownloadRole);
        var created = await cluster.StartCaptureAsync(ns, "running", PacketCaptureEndToEndTests.Icmp("still going", "api", duration: "60s"), Long, pods: ["api"]);

        var (exit, stderr, _) = await cluster.KubectlRawAsync(Alice, SubresourcesCluster.PathOf(ns, "running", "pcap"));

        Assert.Equal(1, exit);
        Assert.Contains("Error from server (Conflict): capture running is still capturing pod api (state Capturing); use follow to stream it live, or download it when the capture has ended", stderr, StringComparison.Ordinal);
        await cluster.Admin.StopPacketCaptureAsync(ns, "running");
    }

    [SkippableFact]
    public async Task A_pcap_deleted_by_retention_answers_410_saying_when_it_expired()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-dl-410");
        var pod = await cluster.StartPodAsync(ns, "api");
        await cluster.BindAsync(ns, "alice", DownloadRole);
        var spec = PacketCaptureEndToEndTests.Icmp("kept briefly", "api", maxPackets: 4);
        spec.Retention = new CaptureRetention { Ttl = "3s" };
        var created = await cluster.StartCaptureAsync(ns, "brief", spec, Long, pods: ["api"]);
        pod.PingFromClient(2);
        var done = await cluster.Admin.WaitForPhaseAsync(ns, "brief", CapturePhase.Succeeded, Long);
        var expiresAt = done.Status!.Targets[0].Artifact!.ExpiresAt!.Value;
        await WaitUntilAsync(async () => (await cluster.KubectlRawAsync(Alice, SubresourcesCluster.PathOf(ns, "brief", "pcap"))).ExitCode != 0);

        var (exit, stderr, _) = await cluster.KubectlRawAsync(Alice, SubresourcesCluster.PathOf(ns, "brief", "pcap"));

        Assert.Equal(1, exit);
        Assert.Contains($"Error from server (Gone): the pcap of capture brief pod api expired at {expiresAt:yyyy-MM-dd'T'HH:mm:ss'Z'} and was deleted by retention", stderr, StringComparison.Ordinal);
    }

    private async Task<(string Namespace, PacketCapture Done)> FinishedCaptureAsync(string prefix, string name)
    {
        var ns = await cluster.CreateNamespaceAsync(prefix);
        var pod = await cluster.StartPodAsync(ns, "api");
        var created = await cluster.StartCaptureAsync(ns, name, PacketCaptureEndToEndTests.Icmp("evidence for the ticket", "api", maxPackets: 6), Long, pods: ["api"]);
        pod.PingFromClient(3);
        return (ns, await cluster.Admin.WaitForPhaseAsync(ns, name, CapturePhase.Succeeded, Long));
    }

    private async Task<IList<Corev1Event>> WaitForEventsAsync(string ns, string capture, Func<Corev1Event, bool> present)
    {
        IList<Corev1Event> events = [];
        await WaitUntilAsync(async () =>
        {
            events = (await cluster.Admin.CoreV1.ListNamespacedEventAsync(ns, fieldSelector: $"involvedObject.name={capture}")).Items;
            return events.Any(present);
        });
        return events;
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> done)
    {
        var deadline = DateTime.UtcNow + Long;
        while (!await done())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out");
            await Task.Delay(500);
        }
    }
}
