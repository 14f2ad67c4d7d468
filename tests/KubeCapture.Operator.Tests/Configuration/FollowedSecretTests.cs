using System.Collections.Concurrent;
using System.Text;
using k8s;
using k8s.Models;
using KubeCapture.Operator.Configuration;
using KubeCapture.Testing.Kubernetes;
using Microsoft.Extensions.Logging.Abstractions;

namespace KubeCapture.Operator.Tests.Configuration;

/// <summary>A followed Secret on the real kube-apiserver, its requests counted as they leave the operator (the alert receiver's token and the ingest key are tested through it in their own classes).</summary>
public sealed class FollowedSecretTests
{
    [SkippableFact]
    public async Task A_watch_the_server_ends_goes_on_from_the_last_version_seen_without_reading_the_Secret_again_and_a_change_after_it_is_in_use()
    {
        var server = await KubeApiServer.SharedAsync();
        var ns = await server.CreateNamespaceAsync("kc-followed-secret");
        using var admin = server.AdminClient();
        await admin.CoreV1.CreateNamespacedSecretAsync(new V1Secret { Metadata = new V1ObjectMeta { Name = "followed" }, StringData = new Dictionary<string, string> { ["value"] = "one" } }, ns);
        var requests = new Requests();
        using var client = new Kubernetes(server.ClientConfiguration(server.AdminToken), requests);
        string? inUse = null;
        var content = new SecretContent { What = "test value", InUse = "value", Use = s => inUse = Encoding.UTF8.GetString(s.Data["value"]), IsLoaded = () => inUse is not null, WhileNotLoaded = "nothing is in use" };
        // kube-apiserver ends each watch after a second, as it does after the 10 minutes the operator asks for.
        var log = new KubeCapture.Testing.Logging.RecordingLogger<FollowedSecret>();
        var followed = new FollowedSecret(client, ns, "followed", content, log, watchTimeout: TimeSpan.FromSeconds(1));
        using var stop = new CancellationTokenSource();
        var running = followed.RunAsync(stop.Token);

        await Until(() => requests.Count("watch=true") >= 4, "four watches, three after the server ended one");
        await admin.CoreV1.PatchNamespacedSecretAsync(new V1Patch("""{"stringData":{"value":"two"}}""", V1Patch.PatchType.MergePatch), "followed", ns);
        await Until(() => inUse == "two", "the changed value in use");
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running);

        Assert.True(1 == requests.Count("/secrets/followed"), string.Join("\n", log.Lines)); // the one read at start
        Assert.Equal(requests.Count("watch=true"), requests.Count("resourceVersion=")); // every watch went on from a version
    }

    private static async Task Until(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"never: {what}");
            await Task.Delay(50);
        }
    }

    /// <summary>The requests that leave the client, by URI.</summary>
    private sealed class Requests : DelegatingHandler
    {
        private readonly ConcurrentQueue<string> _uris = new();

        public int Count(string part) => _uris.Count(u => u.Contains(part, StringComparison.Ordinal));

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            _uris.Enqueue(Uri.UnescapeDataString(request.RequestUri!.PathAndQuery));
            return base.SendAsync(request, cancellationToken);
        }
    }
}
