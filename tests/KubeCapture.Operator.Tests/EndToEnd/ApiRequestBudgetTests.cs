using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Tests.Subresources;
using KubeCapture.Testing.Kubernetes;

namespace KubeCapture.Operator.Tests.EndToEnd;

/// <summary>
/// What the operator costs the real kube-apiserver, counted from the server's audit log by the
/// operator's ServiceAccount user: the requests per capture from creation to Running, and the
/// requests while captures run and nothing changes. The test kubelet reports each capture container
/// running at once (no agent, so no ingest progress): every request counted is the operator's own doing.
/// </summary>
[Collection(ApiServerClusterCollection.Name)]
public sealed class ApiRequestBudgetTests(SubresourcesCluster cluster)
{
    private const int Captures = 3;

    [SkippableFact]
    public async Task A_capture_on_one_pod_costs_at_most_five_requests_from_creation_to_Running_with_its_finalizer_from_admission_and_no_pod_or_namespace_read()
    {
        var (ns, requests) = await StartRunningCapturesAsync("kc-budget");

        var mine = requests.Where(r => r.Namespace == ns || (r.Resource == "namespaces" && r.Name == ns)).ToList();
        var summary = string.Join(", ", mine.GroupBy(r => r.What).Select(g => $"{g.Count()} x {g.Key}"));
        Assert.True(mine.Count <= 5 * Captures, $"{mine.Count} requests for {Captures} captures: {summary}");
        Assert.DoesNotContain(mine, r => r.IsRead);
        Assert.Equal(0, mine.Count(r => r.What == "patch packetcaptures")); // the admission webhook added the finalizer
        Assert.Equal(Captures, mine.Count(r => r.What == "create secrets")); // the upload token, never a literal in the pod spec
        Assert.Equal(Captures, mine.Count(r => r.What == "patch pods/ephemeralcontainers"));
        Assert.Equal(Captures, mine.Count(r => r.What == "create events"));
        Assert.InRange(mine.Count(r => r.What == "update packetcaptures/status"), Captures, 2 * Captures);
    }

    [SkippableFact]
    public async Task While_captures_run_and_nothing_changes_the_operator_reads_nothing_from_the_API_server()
    {
        await StartRunningCapturesAsync("kc-idle");
        var audit = new AuditLog(cluster.Install.Server.AuditLogPath);
        var mark = audit.Mark();

        // The fixture's resync period is 1 s: every Running capture is looked at about six times.
        await Task.Delay(TimeSpan.FromSeconds(6));

        // The operator's ServiceAccount also answers other tests' `kubectl auth can-i` (with its discovery
        // reads) meanwhile: those are kubectl's requests, not the operator's.
        var idle = audit.Since(mark, KubeCaptureInstall.OperatorUser).Where(r => !r.ByKubectl).ToList();
        // The leader Lease is renewed (get + update) by design; the open watches stay open. The
        // extension API server re-reads the front-proxy CA (kube-system/extension-apiserver-authentication)
        // when a client certificate does not verify, at most every 30 s (another test's request that
        // skips the front proxy): bounded, and not a read per capture.
        // A watch kube-apiserver ended at its timeout (5 to 10 minutes) goes on from the version it reached: not a read.
        var reads = idle.Where(r => r.Resource != "leases" && (r.IsRead || (r.Verb == "watch" && !System.Text.RegularExpressions.Regex.IsMatch(r.Uri, "[?&]resourceVersion=[^&]")))
            && !(r.Resource == "configmaps" && r.Name == "extension-apiserver-authentication")).ToList();
        Assert.True(reads.Count == 0, "reads while idle: " + string.Join(", ", reads.Select(r => $"{r.What} {r.Uri}")));
    }

    /// <summary>Captures on pods of a new namespace, each Running; the operator's requests meanwhile (from the audit log).</summary>
    private async Task<(string Namespace, IReadOnlyList<AuditedRequest> Requests)> StartRunningCapturesAsync(string prefix)
    {
        var ns = await cluster.CreateNamespaceAsync(prefix);
        var pods = (ApiServerPods)cluster.Kubelet.Pods;
        for (var i = 0; i < Captures; i++)
        {
            await pods.StartPodAsync(ns, $"api-{i}", $"10.244.0.{i + 1}");
        }

        // The pods reach the operator's cache through its watch (a capture created before that costs one live read).
        await Task.Delay(TimeSpan.FromSeconds(1));
        var audit = new AuditLog(cluster.Install.Server.AuditLogPath);
        var mark = audit.Mark();
        cluster.Kubelet.SimulateRunning = true;
        try
        {
            for (var i = 0; i < Captures; i++)
            {
                await cluster.Admin.CreatePacketCaptureAsync(ns, $"capture-{i}", new PacketCaptureSpec
                {
                    Reason = "request budget",
                    Target = new CaptureTarget { PodName = $"api-{i}" },
                    Duration = "20s", // then DeadlineExceeded (no agent): the slots are free again for the other tests
                    Filter = "tcp port 443",
                });
            }

            for (var i = 0; i < Captures; i++)
            {
                await cluster.Admin.WaitForPhaseAsync(ns, $"capture-{i}", CapturePhase.Running, TimeSpan.FromSeconds(60));
            }
        }
        finally
        {
            cluster.Kubelet.SimulateRunning = false;
        }

        await Task.Delay(TimeSpan.FromMilliseconds(500)); // the last audit lines
        return (ns, audit.Since(mark, KubeCaptureInstall.OperatorUser).Where(r => !r.ByKubectl).ToList());
    }
}
