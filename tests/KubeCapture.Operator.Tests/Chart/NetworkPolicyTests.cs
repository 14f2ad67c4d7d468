using System.Net;
using k8s;
using k8s.Models;

namespace KubeCapture.Operator.Tests.Chart;

/// <summary>
/// Issue 20, 6: the chart's NetworkPolicy, as helm renders it, read by the rules of the NetworkPolicy
/// API (<see cref="NetworkPolicyRules"/>): on by default, it never blocks kube-apiserver from the
/// admission webhooks or the extension API (a blocked webhook with failurePolicy Fail refuses every
/// PacketCapture), lets agents in target pods reach the ingest, and no one else the ingest or /metrics.
/// The real kube-apiserver accepts it (every install of the end-to-end tests applies it).
/// </summary>
public sealed class NetworkPolicyTests
{
    /// <summary>kube-apiserver calls webhooks and extension APIs from the control plane's address: no pod.</summary>
    private static readonly Source ApiServer = new(IPAddress.Parse("10.0.0.10"), null);
    private static readonly Source AgentInShop = new(IPAddress.Parse("10.244.1.7"), "shop");
    private static readonly Source AgentInPayments = new(IPAddress.Parse("10.244.2.9"), "payments");
    private static readonly Source Outsider = new(IPAddress.Parse("203.0.113.7"), null);
    private static readonly Source Prometheus = new(IPAddress.Parse("10.244.3.4"), "monitoring");

    [Fact]
    public void By_default_kube_apiserver_reaches_the_webhooks_and_the_extension_API_from_any_address_pods_reach_the_ingest_and_nobody_reaches_metrics()
    {
        var chart = Render();

        Assert.True(chart.Allows(ApiServer, chart.ServicePort("kc-kubecapture-webhook")));
        Assert.True(chart.Allows(ApiServer, chart.ServicePort("kc-kubecapture-subresources")));
        Assert.True(chart.Allows(AgentInShop, chart.ServicePort("kc-kubecapture-ingest", "grpc-ingest")));
        Assert.True(chart.Allows(AgentInPayments, chart.ServicePort("kc-kubecapture-ingest", "grpc-ingest")));
        Assert.False(chart.Allows(Outsider, chart.ServicePort("kc-kubecapture-ingest", "grpc-ingest")));
        Assert.False(chart.Allows(AgentInShop, chart.ServicePort("kc-kubecapture-metrics")));
        Assert.False(chart.Allows(Prometheus, chart.ServicePort("kc-kubecapture-metrics")));
        Assert.False(chart.Allows(AgentInShop, 12345)); // any other port
        Assert.Equal(["Ingress"], chart.Policy.Spec.PolicyTypes); // what the operator reaches is not restricted
    }

    [Fact]
    public void Allowed_namespaces_kube_apiservers_addresses_and_a_metrics_scraper_narrow_it_to_exactly_those()
    {
        var chart = Render("--set", "policy.allowedNamespaces={shop}", "--set", "networkPolicy.apiServerCIDRs={10.0.0.0/24}",
            "--set-json", """networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]""");

        Assert.True(chart.Allows(ApiServer, chart.ServicePort("kc-kubecapture-webhook")));
        Assert.True(chart.Allows(ApiServer, chart.ServicePort("kc-kubecapture-subresources")));
        Assert.False(chart.Allows(Outsider, chart.ServicePort("kc-kubecapture-webhook")));
        Assert.False(chart.Allows(AgentInShop, chart.ServicePort("kc-kubecapture-subresources")));
        Assert.True(chart.Allows(AgentInShop, chart.ServicePort("kc-kubecapture-ingest", "grpc-ingest")));
        Assert.False(chart.Allows(AgentInPayments, chart.ServicePort("kc-kubecapture-ingest", "grpc-ingest")));
        Assert.True(chart.Allows(Prometheus, chart.ServicePort("kc-kubecapture-metrics")));
        Assert.False(chart.Allows(AgentInShop, chart.ServicePort("kc-kubecapture-metrics")));
        // The relay of live follows between the operator's replicas: its own pods only, on the extension API's port.
        var otherReplica = new Source(IPAddress.Parse("10.244.4.2"), chart.Policy.Metadata.NamespaceProperty, chart.PodLabels);
        var neighbour = otherReplica with { PodLabels = new Dictionary<string, string> { ["app"] = "something-else" } };
        Assert.True(chart.Allows(otherReplica, chart.ServicePort("kc-kubecapture-subresources")));
        Assert.False(chart.Allows(neighbour, chart.ServicePort("kc-kubecapture-subresources")));
        Assert.False(chart.Allows(otherReplica with { PodNamespace = "shop" }, chart.ServicePort("kc-kubecapture-subresources")));
        Assert.False(chart.Allows(otherReplica, chart.ServicePort("kc-kubecapture-metrics")));
    }

    [Fact]
    public void With_kube_apiservers_addresses_set_the_alert_receiver_is_reached_from_alertReceiver_from_and_without_a_peer_the_chart_refuses_to_render()
    {
        var open = Render("--set", "alertReceiver.enabled=true");
        var closed = Render("--set", "networkPolicy.apiServerCIDRs={10.0.0.0/24}", "--set", "alertReceiver.enabled=true",
            "--set-json", """alertReceiver.from=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]""");
        var (code, output) = HelmChartTests.Helm("template", "kc", HelmChartTests.Chart, "--set", "storage.local.emptyDir=true", "--set", "alertReceiver.enabled=true", "--set", "networkPolicy.apiServerCIDRs={10.0.0.0/24}");

        Assert.True(open.Allows(Prometheus, open.ServicePort("kc-kubecapture-subresources"))); // Alertmanager beside Prometheus: the port is open to all
        Assert.True(closed.Allows(Prometheus, closed.ServicePort("kc-kubecapture-subresources")));
        Assert.True(closed.Allows(ApiServer, closed.ServicePort("kc-kubecapture-subresources")));
        Assert.False(closed.Allows(AgentInShop, closed.ServicePort("kc-kubecapture-subresources")));
        Assert.False(closed.Allows(Prometheus, closed.ServicePort("kc-kubecapture-webhook")));
        Assert.NotEqual(0, code);
        Assert.Contains("networkPolicy: alertReceiver is on and networkPolicy.apiServerCIDRs closes the https port, but alertReceiver.from names no peer", output, StringComparison.Ordinal);
    }

    [Fact]
    public void A_ServiceMonitor_without_a_metrics_peer_is_refused_at_render_and_the_policy_can_be_turned_off()
    {
        var (code, output) = HelmChartTests.Helm("template", "kc", HelmChartTests.Chart, "--set", "storage.local.emptyDir=true", "--set", "metrics.serviceMonitor.enabled=true");
        Assert.NotEqual(0, code);
        Assert.Contains("networkPolicy: metrics.serviceMonitor is on but networkPolicy.metricsFrom names no peer", output, StringComparison.Ordinal);

        var (off, rendered) = HelmChartTests.Helm("template", "kc", HelmChartTests.Chart, "--set", "storage.local.emptyDir=true", "--set", "networkPolicy.enabled=false");
        Assert.True(off == 0, rendered);
        Assert.Empty(KubernetesYaml.LoadAllFromString(rendered).OfType<V1NetworkPolicy>());
    }

    private static NetworkPolicyRules Render(params string[] set)
    {
        var (code, output) = HelmChartTests.Helm(["template", "kc", HelmChartTests.Chart, "--set", "storage.local.emptyDir=true", .. set]);
        Assert.True(code == 0, output);
        var objects = KubernetesYaml.LoadAllFromString(output);
        return new NetworkPolicyRules(Assert.Single(objects.OfType<V1NetworkPolicy>()), Assert.Single(objects.OfType<V1Deployment>()), objects.OfType<V1Service>().ToList());
    }
}

/// <summary>Where a connection comes from: an address, and the namespace and labels of the pod it is (null: no pod, e.g. the control plane).</summary>
public sealed record Source(IPAddress Address, string? PodNamespace, IDictionary<string, string>? PodLabels = null);

/// <summary>
/// Whether a NetworkPolicy admits a connection to the operator's pod, by the rules of
/// networking.k8s.io/v1: a pod the policy selects for Ingress takes only what some rule allows;
/// a rule allows a port it lists (a number, or a name of the container's ports) from any of its
/// peers (every source when it lists none); ipBlock matches the address, namespaceSelector and
/// podSelector match pods only (kubernetes.io/metadata.name labels each namespace).
/// </summary>
public sealed class NetworkPolicyRules(V1NetworkPolicy policy, V1Deployment deployment, IReadOnlyList<V1Service> services)
{
    public V1NetworkPolicy Policy => policy;

    /// <summary>The labels of the operator's pods.</summary>
    public IDictionary<string, string> PodLabels => deployment.Spec.Template.Metadata.Labels;

    /// <summary>The container port a Service's port (the named one, or its only one) reaches.</summary>
    public int ServicePort(string service, string? port = null)
    {
        var ports = services.Single(s => s.Metadata.Name == service).Spec.Ports;
        var target = (port is null ? ports.Single() : ports.Single(p => p.Name == port)).TargetPort.Value;
        return int.TryParse(target, out var number) ? number : ContainerPorts.Single(p => p.Name == target).ContainerPort;
    }

    private IEnumerable<V1ContainerPort> ContainerPorts => deployment.Spec.Template.Spec.Containers.SelectMany(c => c.Ports ?? []);

    public bool Allows(Source source, int port)
    {
        var labels = deployment.Spec.Template.Metadata.Labels;
        if (!Matches(policy.Spec.PodSelector, labels) || !(policy.Spec.PolicyTypes ?? ["Ingress"]).Contains("Ingress"))
        {
            return true; // not selected: not isolated
        }

        return (policy.Spec.Ingress ?? []).Any(rule =>
            (rule.Ports is not { Count: > 0 } || rule.Ports.Any(p => PortMatches(p, port)))
            && (rule.FromProperty is not { Count: > 0 } || rule.FromProperty.Any(peer => PeerMatches(peer, source))));
    }

    private bool PortMatches(V1NetworkPolicyPort rule, int port)
    {
        if ((rule.Protocol ?? "TCP") != "TCP" || rule.Port is null)
        {
            return rule.Port is null;
        }

        return int.TryParse(rule.Port.Value, out var number) ? number == port : ContainerPorts.Any(p => p.Name == rule.Port.Value && p.ContainerPort == port && (p.Protocol ?? "TCP") == "TCP");
    }

    private bool PeerMatches(V1NetworkPolicyPeer peer, Source source)
    {
        if (peer.IpBlock is { } block)
        {
            return InCidr(source.Address, block.Cidr) && !(block.Except ?? []).Any(e => InCidr(source.Address, e));
        }

        if (source.PodNamespace is null)
        {
            return false; // selectors name pods only
        }

        // A namespaceSelector names namespaces by their labels; a podSelector alone, pods of the policy's own namespace; a podSelector, pods by their labels.
        var namespaceLabels = new Dictionary<string, string> { ["kubernetes.io/metadata.name"] = source.PodNamespace };
        var inNamespace = peer.NamespaceSelector is { } selector ? Matches(selector, namespaceLabels) : source.PodNamespace == policy.Metadata.NamespaceProperty;
        return inNamespace && (peer.PodSelector is not { } pods || Matches(pods, source.PodLabels ?? new Dictionary<string, string>()));
    }

    private static bool Matches(V1LabelSelector selector, IDictionary<string, string> labels) =>
        (selector.MatchLabels ?? new Dictionary<string, string>()).All(l => labels.TryGetValue(l.Key, out var v) && v == l.Value)
        && (selector.MatchExpressions ?? []).All(e => e.OperatorProperty switch
        {
            "In" => labels.TryGetValue(e.Key, out var v) && e.Values.Contains(v),
            "NotIn" => !labels.TryGetValue(e.Key, out var v) || !e.Values.Contains(v),
            "Exists" => labels.ContainsKey(e.Key),
            "DoesNotExist" => !labels.ContainsKey(e.Key),
            _ => throw new InvalidOperationException($"unknown selector operator {e.OperatorProperty}"),
        });

    private static bool InCidr(IPAddress address, string cidr) => System.Net.IPNetwork.Parse(cidr).Contains(address);
}
