using System.Diagnostics;
using k8s;
using k8s.Models;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Tracing;
using Microsoft.Extensions.Configuration;

namespace KubeCapture.Operator.Tests.Chart;

/// <summary>The chart and the CRD, checked by the real helm (installed into .tools/ by scripts/setup.sh) and the real API models.</summary>
public sealed class HelmChartTests
{
    private static readonly string Root = FindRoot();
    internal static readonly string Chart = Path.Combine(Root, "charts", "kubecapture");
    private static readonly string Crd = Path.Combine(Chart, "crds", "packetcaptures.kubecapture.io.yaml");

    [Fact]
    public void Helm_lint_passes()
    {
        var (code, output) = Helm("lint", Chart, "--strict");
        Assert.True(code == 0, output);
        Assert.Contains("0 chart(s) failed", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Helm_template_renders_the_CRD_RBAC_Deployment_and_Service()
    {
        var (code, output) = Helm("template", "kc", Chart, "--namespace", "kubecapture-system", "--include-crds",
            "--set", "policy.allowedNamespaces={payments,shop}", "--set", "storage.endpoint=minio:9000", "--set", "storage.credentialsSecret=s3");
        Assert.True(code == 0, output);

        var objects = KubernetesYaml.LoadAllFromString(output);
        var crd = Assert.Single(objects.OfType<V1CustomResourceDefinition>());
        Assert.Equal("packetcaptures.kubecapture.io", crd.Metadata.Name);
        var deployment = Assert.Single(objects.OfType<V1Deployment>());
        var env = deployment.Spec.Template.Spec.Containers[0].Env.ToDictionary(e => e.Name, e => e);
        Assert.Equal("payments", env["Policy__AllowedNamespaces__0"].Value);
        Assert.Equal("shop", env["Policy__AllowedNamespaces__1"].Value);
        Assert.Equal("s3", env["Storage__S3__SecretKey"].ValueFrom.SecretKeyRef.Name);
        Assert.Equal("https://kc-kubecapture-ingest.kubecapture-system.svc:8081", env["Ingest__AdvertisedUrl"].Value);
        var role = objects.OfType<V1ClusterRole>().Single(r => r.Metadata.Name == "kc-kubecapture-operator");
        Assert.Contains(role.Rules, r => r.Resources.Contains("pods/ephemeralcontainers") && r.Verbs.Contains("patch") && !r.Verbs.Contains("delete"));
        Assert.DoesNotContain(role.Rules, r => r.Resources.Contains("pods") && r.Verbs.Intersect(["create", "delete", "update"]).Any());
        var leases = objects.OfType<V1Role>().Single(r => r.Metadata.Name == "kc-kubecapture-operator");
        Assert.Contains(leases.Rules, r => r.Resources.Contains("leases"));
        Assert.Equal(["kc-kubecapture-ingest", "kc-kubecapture-metrics", "kc-kubecapture-subresources", "kc-kubecapture-webhook"], objects.OfType<V1Service>().Select(s => s.Metadata.Name).Order());
    }

    [Fact]
    public void Without_S3_the_chart_refuses_to_render_until_a_volume_for_the_captures_is_chosen()
    {
        var (code, output) = Helm("template", "kc", Chart);

        Assert.NotEqual(0, code);
        Assert.Contains("storage: set storage.endpoint (an S3 bucket), or storage.local.existingClaim", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("storage.local.existingClaim=captures-pvc", "captures-pvc")]
    [InlineData("storage.local.emptyDir=true", null)]
    public void Without_S3_the_captures_live_on_the_chosen_volume_and_tmp_is_writable(string set, string? claim)
    {
        var (code, output) = Helm("template", "kc", Chart, "--set", set);
        Assert.True(code == 0, output);

        var pod = Assert.Single(KubernetesYaml.LoadAllFromString(output).OfType<V1Deployment>()).Spec.Template.Spec;
        var container = Assert.Single(pod.Containers);
        Assert.True(container.SecurityContext.ReadOnlyRootFilesystem);
        Assert.Equal("/var/lib/kubecapture", container.Env.Single(e => e.Name == "Storage__LocalPath").Value);
        var mounts = container.VolumeMounts.ToDictionary(m => m.MountPath, m => m.Name);
        var captures = pod.Volumes.Single(v => v.Name == mounts["/var/lib/kubecapture"]);
        Assert.Equal(claim, captures.PersistentVolumeClaim?.ClaimName);
        Assert.Equal(claim is null, captures.EmptyDir is not null);
        Assert.NotNull(pod.Volumes.Single(v => v.Name == mounts["/tmp"]).EmptyDir);
    }

    [Fact]
    public void With_S3_no_local_store_is_mounted()
    {
        var (code, output) = Helm("template", "kc", Chart, "--set", "storage.endpoint=minio:9000");
        Assert.True(code == 0, output);

        var container = Assert.Single(Assert.Single(KubernetesYaml.LoadAllFromString(output).OfType<V1Deployment>()).Spec.Template.Spec.Containers);
        Assert.DoesNotContain(container.VolumeMounts, m => m.MountPath == "/var/lib/kubecapture");
        Assert.DoesNotContain(container.Env, e => e.Name == "Storage__LocalPath");
    }

    [Fact]
    public void The_Grafana_dashboard_queries_only_metrics_the_operations_page_documents_and_ships_when_asked()
    {
        var dashboard = File.ReadAllText(Path.Combine(Chart, "dashboards", "kubecapture.json"));
        var operations = File.ReadAllText(Path.Combine(Root, "docs", "operations.md"));
        var documented = System.Text.RegularExpressions.Regex.Matches(operations, @"^\| `(kubecapture_[a-z_]+)` \|", System.Text.RegularExpressions.RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToHashSet();
        using var json = System.Text.Json.JsonDocument.Parse(dashboard);
        var queried = json.RootElement.GetProperty("panels").EnumerateArray()
            .SelectMany(p => p.GetProperty("targets").EnumerateArray()).Select(t => t.GetProperty("expr").GetString()!)
            .SelectMany(e => System.Text.RegularExpressions.Regex.Matches(e, "kubecapture_[a-z_]+").Select(m => m.Value))
            .Select(m => System.Text.RegularExpressions.Regex.Replace(m, "_(bucket|count|sum)$", ""))
            .ToHashSet();

        Assert.NotEmpty(queried);
        Assert.Empty(queried.Except(documented));
        var (code, output) = Helm("template", "kc", Chart, "--set", "storage.endpoint=minio:9000", "--set", "metrics.grafanaDashboard.enabled=true");
        Assert.True(code == 0, output);
        var configMap = Assert.Single(KubernetesYaml.LoadAllFromString(output).OfType<V1ConfigMap>(), c => c.Metadata.Name == "kc-kubecapture-dashboard");
        Assert.Equal("1", configMap.Metadata.Labels["grafana_dashboard"]);
        Assert.Equal(dashboard.TrimEnd(), configMap.Data["kubecapture.json"].TrimEnd());
    }

    [Theory]
    [InlineData("text", "simple")]
    [InlineData("json", "json")]
    public void The_log_format_selects_the_operators_console_formatter(string format, string formatter)
    {
        var (code, output) = Helm("template", "kc", Chart, "--set", "storage.endpoint=minio:9000", "--set", $"logFormat={format}");
        Assert.True(code == 0, output);

        var env = Assert.Single(KubernetesYaml.LoadAllFromString(output).OfType<V1Deployment>()).Spec.Template.Spec.Containers[0].Env;
        Assert.Equal(formatter, env.Single(e => e.Name == "Logging__Console__FormatterName").Value);
    }

    [Fact]
    public void With_S3_two_replicas_by_default_prefer_different_nodes_a_rollout_adds_one_before_it_takes_one_and_a_drain_leaves_one_ingesting()
    {
        var (code, output) = Helm("template", "kc", Chart, "--set", "storage.endpoint=minio:9000");
        Assert.True(code == 0, output);

        var objects = KubernetesYaml.LoadAllFromString(output);
        var deployment = Assert.Single(objects.OfType<V1Deployment>());
        Assert.Equal(2, deployment.Spec.Replicas);
        Assert.Equal(("RollingUpdate", "0", "1"), (deployment.Spec.Strategy.Type, deployment.Spec.Strategy.RollingUpdate.MaxUnavailable.Value, deployment.Spec.Strategy.RollingUpdate.MaxSurge.Value));
        // Preferred, never required: a one-node cluster runs both replicas.
        Assert.Null(deployment.Spec.Template.Spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution);
        var preferred = Assert.Single(deployment.Spec.Template.Spec.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution);
        Assert.Equal("kubernetes.io/hostname", preferred.PodAffinityTerm.TopologyKey);
        Assert.Equal(deployment.Spec.Selector.MatchLabels, preferred.PodAffinityTerm.LabelSelector.MatchLabels);
        var container = deployment.Spec.Template.Spec.Containers[0];
        Assert.Equal("status.podIP", container.Env.Single(e => e.Name == "POD_IP").ValueFrom.FieldRef.FieldPath);
        Assert.Equal("/readyz", container.ReadinessProbe.HttpGet.Path);
        var budget = Assert.Single(objects.OfType<V1PodDisruptionBudget>());
        Assert.Equal(("1", null), (budget.Spec.MinAvailable?.Value, budget.Spec.MaxUnavailable?.Value));
        Assert.Equal(deployment.Spec.Selector.MatchLabels, budget.Spec.Selector.MatchLabels);
        // Both replicas take the same Secrets: the upload token key and the serving certificate, never a key of their own.
        Assert.Equal("kc-kubecapture-ingest-token", container.Env.Single(e => e.Name == "Ingest__TokenKeySecret").Value);
        Assert.Equal("kc-kubecapture-serving-certificate", container.Env.Single(e => e.Name == "ServingCertificate__SecretName").Value);
        // The upload Lease timings, in the form of the leader election's.
        Assert.Equal(("15s", "10s"), (container.Env.Single(e => e.Name == "Ingest__UploadLeaseDuration").Value, container.Env.Single(e => e.Name == "Ingest__UploadLeaseRenewDeadline").Value));
    }

    [Fact]
    public void The_upload_Lease_timings_are_values_in_the_leader_elections_form_and_a_number_without_a_unit_is_refused()
    {
        var (code, output) = Helm("template", "kc", Chart, "--set", "storage.endpoint=minio:9000", "--set", "ingest.uploadLease.duration=30s", "--set", "ingest.uploadLease.renewDeadline=20s");
        Assert.True(code == 0, output);
        var env = Assert.Single(KubernetesYaml.LoadAllFromString(output).OfType<V1Deployment>()).Spec.Template.Spec.Containers[0].Env;
        Assert.Equal(("30s", "20s"), (env.Single(e => e.Name == "Ingest__UploadLeaseDuration").Value, env.Single(e => e.Name == "Ingest__UploadLeaseRenewDeadline").Value));

        var (refused, message) = Helm("template", "kc", Chart, "--set", "storage.endpoint=minio:9000", "--set-string", "ingest.uploadLease.duration=15");
        Assert.NotEqual(0, refused);
        Assert.Contains("ingest.uploadLease.duration", message, StringComparison.Ordinal);
    }

    [Fact]
    public void With_S3_and_one_replica_it_rolls_out_one_before_it_takes_one_and_a_drain_may_take_it()
    {
        var (code, output) = Helm("template", "kc", Chart, "--set", "storage.endpoint=minio:9000", "--set", "replicas=1");
        Assert.True(code == 0, output);

        var objects = KubernetesYaml.LoadAllFromString(output);
        var deployment = Assert.Single(objects.OfType<V1Deployment>());
        Assert.Equal(1, deployment.Spec.Replicas);
        Assert.Equal(("RollingUpdate", "0", "1"), (deployment.Spec.Strategy.Type, deployment.Spec.Strategy.RollingUpdate.MaxUnavailable.Value, deployment.Spec.Strategy.RollingUpdate.MaxSurge.Value));
        var budget = Assert.Single(objects.OfType<V1PodDisruptionBudget>());
        Assert.Equal((null, "1"), (budget.Spec.MinAvailable?.Value, budget.Spec.MaxUnavailable?.Value));
    }

    [Fact]
    public void With_local_storage_one_replica_is_recreated_and_a_drain_may_take_it()
    {
        var (code, output) = Helm("template", "kc", Chart, "--set", "storage.local.emptyDir=true", "--set", "replicas=3");
        Assert.True(code == 0, output);

        var objects = KubernetesYaml.LoadAllFromString(output);
        var deployment = Assert.Single(objects.OfType<V1Deployment>());
        Assert.Equal((1, "Recreate"), (deployment.Spec.Replicas, deployment.Spec.Strategy.Type));
        var budget = Assert.Single(objects.OfType<V1PodDisruptionBudget>());
        Assert.Equal((null, "1"), (budget.Spec.MinAvailable?.Value, budget.Spec.MaxUnavailable?.Value));
    }

    [Theory]
    [InlineData("download", "get", new[] { "packetcaptures/pcap", "packetcaptures/manifest", "packetcaptures/follow" })]
    [InlineData("snapshot", "create", new[] { "packetcaptures/snapshot" })]
    public void The_download_and_snapshot_ClusterRoles_grant_only_their_verb_on_their_subresources_and_are_aggregated_into_admin_and_edit_but_not_view(string role, string verb, string[] resources)
    {
        var (code, output) = Helm("template", "kc", Chart, "--namespace", "kubecapture-system", "--set", "storage.endpoint=minio:9000");
        Assert.True(code == 0, output);

        var clusterRole = KubernetesYaml.LoadAllFromString(output).OfType<V1ClusterRole>().Single(r => r.Metadata.Name == $"kc-kubecapture-{role}");

        var rule = Assert.Single(clusterRole.Rules);
        Assert.Equal(["subresources.kubecapture.io"], rule.ApiGroups);
        Assert.Equal(resources, rule.Resources);
        Assert.Equal([verb], rule.Verbs);
        Assert.Equal("true", clusterRole.Metadata.Labels["rbac.authorization.k8s.io/aggregate-to-admin"]);
        Assert.Equal("true", clusterRole.Metadata.Labels["rbac.authorization.k8s.io/aggregate-to-edit"]);
        Assert.DoesNotContain("rbac.authorization.k8s.io/aggregate-to-view", clusterRole.Metadata.Labels.Keys);
    }

    [Fact]
    public void The_webhook_configurations_send_only_packetcapture_creates_and_updates_to_the_webhook_Service_whose_name_the_certificate_carries_and_fail_closed()
    {
        var (code, output) = Helm("template", "kc", Chart, "--namespace", "kubecapture-system", "--set", "storage.endpoint=minio:9000", "--set", "subresources.enabled=false");
        Assert.True(code == 0, output);
        var objects = KubernetesYaml.LoadAllFromString(output);

        var mutating = Assert.Single(Assert.Single(objects.OfType<V1MutatingWebhookConfiguration>()).Webhooks);
        var validating = Assert.Single(Assert.Single(objects.OfType<V1ValidatingWebhookConfiguration>()).Webhooks);
        var service = Assert.Single(objects.OfType<V1Service>(), s => s.Metadata.Name == "kc-kubecapture-webhook");
        var container = Assert.Single(objects.OfType<V1Deployment>()).Spec.Template.Spec.Containers[0];
        var env = container.Env.ToDictionary(e => e.Name, e => e.Value);

        Assert.Equal(("stamp.packetcaptures.kubecapture.io", "/admission/stamp"), (mutating.Name, mutating.ClientConfig.Service.Path));
        Assert.Equal(("stamp-guard.packetcaptures.kubecapture.io", "/admission/guard"), (validating.Name, validating.ClientConfig.Service.Path));
        Assert.Equal(["CREATE"], Assert.Single(mutating.Rules).Operations);
        Assert.Equal(["CREATE", "UPDATE"], Assert.Single(validating.Rules).Operations);
        foreach (var (rule, config, failurePolicy, sideEffects, versions, timeout) in new[]
        {
            (mutating.Rules[0], mutating.ClientConfig, mutating.FailurePolicy, mutating.SideEffects, mutating.AdmissionReviewVersions, mutating.TimeoutSeconds),
            (validating.Rules[0], validating.ClientConfig, validating.FailurePolicy, validating.SideEffects, validating.AdmissionReviewVersions, validating.TimeoutSeconds),
        })
        {
            Assert.Equal(["kubecapture.io"], rule.ApiGroups);
            Assert.Equal(["packetcaptures"], rule.Resources);
            // The guard's one side effect, the audit line of a break-glass removal of the finalizer, is never made on a dry run.
            Assert.Equal(("Fail", config == validating.ClientConfig ? "NoneOnDryRun" : "None", 5), (failurePolicy, sideEffects, timeout));
            Assert.Equal(["v1"], versions);
            Assert.Equal(("kc-kubecapture-webhook", "kubecapture-system", 443), (config.Service.Name, config.Service.NamespaceProperty, config.Service.Port));
            Assert.Null(config.CaBundle); // the operator fills it in
        }

        Assert.Equal("webhook", service.Spec.Ports.Single().TargetPort.Value);
        Assert.Contains(container.Ports, p => p.Name == "webhook" && p.ContainerPort == 9443);
        Assert.Equal("true", env["Admission__Enabled"]);
        Assert.Equal("https://0.0.0.0:9443", env["Admission__Url"]);
        Assert.Equal("true", env["Reconciler__RequireRequesterStamp"]);
        Assert.Equal("kc-kubecapture-requester-stamp", env["ServingCertificate__MutatingWebhookConfigurations__0"]);
        Assert.Equal("kc-kubecapture-requester-stamp", env["ServingCertificate__ValidatingWebhookConfigurations__0"]);
        Assert.Equal("kc-kubecapture-webhook.kubecapture-system.svc", env["ServingCertificate__DnsNames__0"]);
        Assert.False(env.ContainsKey("Subresources__Enabled"));
    }

    [Fact]
    public void The_APIService_routes_to_the_subresources_Service_whose_name_the_managed_certificate_carries()
    {
        var (code, output) = Helm("template", "kc", Chart, "--namespace", "kubecapture-system", "--set", "storage.endpoint=minio:9000");
        Assert.True(code == 0, output);
        var objects = KubernetesYaml.LoadAllFromString(output);

        var apiService = Assert.Single(objects.OfType<V1APIService>());
        var env = Assert.Single(objects.OfType<V1Deployment>()).Spec.Template.Spec.Containers[0].Env.ToDictionary(e => e.Name, e => e.Value);

        Assert.Equal(("v1alpha1.subresources.kubecapture.io", "subresources.kubecapture.io", "v1alpha1"), (apiService.Metadata.Name, apiService.Spec.Group, apiService.Spec.Version));
        Assert.Null(apiService.Spec.CaBundle); // the operator fills it in
        Assert.NotEqual(true, apiService.Spec.InsecureSkipTLSVerify);
        Assert.Equal(("kc-kubecapture-subresources", "kubecapture-system", 443), (apiService.Spec.Service.Name, apiService.Spec.Service.NamespaceProperty, apiService.Spec.Service.Port));
        Assert.Contains("kc-kubecapture-subresources.kubecapture-system.svc", env.Where(e => e.Key.StartsWith("ServingCertificate__DnsNames__", StringComparison.Ordinal)).Select(e => e.Value));
        Assert.Equal("v1alpha1.subresources.kubecapture.io", env["ServingCertificate__ApiServices__0"]);
        Assert.Equal("kc-kubecapture-serving-certificate", env["ServingCertificate__SecretName"]);
        Assert.Equal("true", env["Subresources__Enabled"]);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void By_default_the_ingest_serves_TLS_with_a_managed_certificate_naming_the_ingest_Service_and_the_operator_accepts_the_rendered_settings(bool subresources)
    {
        var (code, output) = Helm("template", "kc", Chart, "--namespace", "kubecapture-system", "--set", "storage.endpoint=minio:9000", "--set", $"subresources.enabled={subresources.ToString().ToLowerInvariant()}");
        Assert.True(code == 0, output);
        var objects = KubernetesYaml.LoadAllFromString(output);
        var env = Assert.Single(objects.OfType<V1Deployment>()).Spec.Template.Spec.Containers[0].Env.Where(e => e.ValueFrom is null).ToDictionary(e => e.Name, e => e.Value);
        var port = objects.OfType<V1Service>().Single(s => s.Metadata.Name == "kc-kubecapture-ingest").Spec.Ports.Single(p => p.Name == "grpc-ingest");

        Assert.Equal(("true", "https://0.0.0.0:8081", "https://kc-kubecapture-ingest.kubecapture-system.svc:8081"), (env["Ingest__Tls"], env["Kestrel__Endpoints__Ingest__Url"], env["Ingest__AdvertisedUrl"]));
        var names = env.Where(e => e.Key.StartsWith("ServingCertificate__DnsNames__", StringComparison.Ordinal)).Select(e => e.Value).ToList();
        Assert.Contains("kc-kubecapture-ingest.kubecapture-system.svc", names);
        Assert.Contains("kc-kubecapture-ingest.kubecapture-system.svc.cluster.local", names);
        Assert.Equal(subresources, names.Contains("kc-kubecapture-subresources.kubecapture-system.svc"));
        Assert.Equal(subresources, env.ContainsKey("ServingCertificate__ApiServices__0"));
        Assert.Null(port.AppProtocol); // not h2c
        Assert.Empty(KubeCapture.Operator.Ingest.IngestTls.Problems(OperatorConfiguration(env)));
    }

    [Theory]
    [InlineData(null, "kc-kubecapture-alert-receiver", "true")]
    [InlineData("pager-token", "pager-token", "false")]
    public void The_alert_receiver_is_off_by_default_and_on_gives_the_operator_its_Secret_which_the_operator_may_read_and_watch_and_creates_only_when_it_is_the_charts(string? existing, string secret, string create)
    {
        string[] extra = existing is null ? [] : ["--set", $"alertReceiver.existingSecret={existing}"];
        var (offCode, off) = Helm("template", "kc", Chart, "--namespace", "kubecapture-system", "--set", "storage.endpoint=minio:9000");
        var (code, output) = Helm(["template", "kc", Chart, "--namespace", "kubecapture-system", "--set", "storage.endpoint=minio:9000", "--set", "alertReceiver.enabled=true", .. extra]);
        var (noSubresources, refused) = Helm("template", "kc", Chart, "--namespace", "kubecapture-system", "--set", "storage.endpoint=minio:9000", "--set", "alertReceiver.enabled=true", "--set", "subresources.enabled=false");
        Assert.True(offCode == 0, off);
        Assert.True(code == 0, output);
        var objects = KubernetesYaml.LoadAllFromString(output);
        var env = Assert.Single(objects.OfType<V1Deployment>()).Spec.Template.Spec.Containers[0].Env.Where(e => e.ValueFrom is null).ToDictionary(e => e.Name, e => e.Value);
        var role = objects.OfType<V1Role>().Single(r => r.Metadata.Name == "kc-kubecapture-operator");

        Assert.DoesNotContain(Assert.Single(KubernetesYaml.LoadAllFromString(off).OfType<V1Deployment>()).Spec.Template.Spec.Containers[0].Env, e => e.Name.StartsWith("AlertReceiver__", StringComparison.Ordinal));
        Assert.Equal(("true", secret, create), (env["AlertReceiver__Enabled"], env["AlertReceiver__SecretName"], env["AlertReceiver__CreateSecret"]));
        Assert.Contains(role.Rules, r => r.Resources.SequenceEqual(["secrets"]) && r.ResourceNames?.SequenceEqual([secret]) == true && r.Verbs.SequenceEqual(["get", "list", "watch"])); // read and followed by a watch of that name
        Assert.DoesNotContain(objects.OfType<V1Secret>(), s => s.Metadata.Name == secret); // the operator creates it: a render never replaces the token
        Assert.NotEqual(0, noSubresources);
        Assert.Contains("alertReceiver.enabled needs subresources.enabled", refused, StringComparison.Ordinal);
    }

    [Fact]
    public void The_alert_receivers_capture_rules_reach_the_operator_as_the_rules_it_parses_and_are_refused_without_the_receiver_or_with_a_bad_name()
    {
        string[] rule = ["--set", "alertReceiver.captureRules[0].name=checkout-resets", "--set", "alertReceiver.captureRules[0].alertNames={CheckoutResets,CheckoutStalls}",
            "--set", "alertReceiver.captureRules[0].matchLabels.severity=page", "--set", "alertReceiver.captureRules[0].capture.duration=2m", "--set-string", "alertReceiver.captureRules[0].capture.filter=tcp port 5432"];
        var (none, withoutRules) = Helm("template", "kc", Chart, "--namespace", "kubecapture-system", "--set", "storage.endpoint=minio:9000", "--set", "alertReceiver.enabled=true");
        var (code, output) = Helm(["template", "kc", Chart, "--namespace", "kubecapture-system", "--set", "storage.endpoint=minio:9000", "--set", "alertReceiver.enabled=true", .. rule]);
        var (off, refused) = Helm(["template", "kc", Chart, "--namespace", "kubecapture-system", "--set", "storage.endpoint=minio:9000", .. rule]);
        var (badName, schema) = Helm(["template", "kc", Chart, "--namespace", "kubecapture-system", "--set", "storage.endpoint=minio:9000", "--set", "alertReceiver.enabled=true", .. rule, "--set", "alertReceiver.captureRules[0].name=Checkout_Resets"]);
        Assert.True(none == 0, withoutRules);
        Assert.True(code == 0, output);
        var env = Assert.Single(KubernetesYaml.LoadAllFromString(output).OfType<V1Deployment>()).Spec.Template.Spec.Containers[0].Env.Where(e => e.ValueFrom is null).ToDictionary(e => e.Name, e => e.Value);

        Assert.DoesNotContain(Assert.Single(KubernetesYaml.LoadAllFromString(withoutRules).OfType<V1Deployment>()).Spec.Template.Spec.Containers[0].Env, e => e.Name == "AlertReceiver__CaptureRules");
        var parsed = Assert.Single(KubeCapture.Operator.Alerts.AlertCaptureRule.ParseAll(env["AlertReceiver__CaptureRules"], new KubeCapture.Operator.Reconciliation.CapturePolicy()));
        Assert.Equal(("checkout-resets", "CheckoutResets,CheckoutStalls", "page", "2m", "tcp port 5432"),
            (parsed.Name, string.Join(",", parsed.AlertNames), parsed.MatchLabels["severity"], parsed.Capture.Duration, parsed.Capture.Filter));
        Assert.NotEqual(0, off);
        Assert.Contains("alertReceiver.captureRules needs alertReceiver.enabled", refused, StringComparison.Ordinal);
        Assert.NotEqual(0, badName);
        Assert.Contains("alertReceiver.captureRules.0.name", schema, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null, "Auto")]
    [InlineData("Secret", "Secret")]
    [InlineData("PodSpec", "PodSpec")]
    public void The_upload_token_delivery_is_Auto_by_default_and_reaches_the_operator_as_set(string? set, string expected)
    {
        string[] extra = set is null ? [] : ["--set", $"ingest.tokenDelivery={set}"];
        var (code, output) = Helm(["template", "kc", Chart, "--namespace", "kubecapture-system", "--set", "storage.endpoint=minio:9000", .. extra]);
        Assert.True(code == 0, output);
        var env = Assert.Single(KubernetesYaml.LoadAllFromString(output).OfType<V1Deployment>()).Spec.Template.Spec.Containers[0].Env.Where(e => e.ValueFrom is null).ToDictionary(e => e.Name, e => e.Value);

        Assert.Equal(expected, env["Ingest__TokenDelivery"]);
        Assert.Equal(Enum.Parse<KubeCapture.Operator.Reconciliation.TokenDelivery>(expected), KubeCapture.Operator.Reconciliation.TokenDeliveryChoice.Read(env["Ingest__TokenDelivery"]));
    }

    [Fact]
    public void A_token_delivery_the_operator_does_not_know_is_refused_by_the_charts_schema()
    {
        var (code, output) = Helm("template", "kc", Chart, "--namespace", "kubecapture-system", "--set", "storage.endpoint=minio:9000", "--set", "ingest.tokenDelivery=Literal");

        Assert.NotEqual(0, code);
        Assert.Contains("tokenDelivery", output, StringComparison.Ordinal);
    }

    [Fact]
    public void With_ingest_TLS_turned_off_the_chart_serves_plain_h2c_and_the_operator_accepts_it()
    {
        var (code, output) = Helm("template", "kc", Chart, "--namespace", "kubecapture-system", "--set", "storage.endpoint=minio:9000", "--set", "subresources.enabled=false", "--set", "ingest.tls.enabled=false");
        Assert.True(code == 0, output);
        var objects = KubernetesYaml.LoadAllFromString(output);
        var env = Assert.Single(objects.OfType<V1Deployment>()).Spec.Template.Spec.Containers[0].Env.Where(e => e.ValueFrom is null).ToDictionary(e => e.Name, e => e.Value);
        var port = objects.OfType<V1Service>().Single(s => s.Metadata.Name == "kc-kubecapture-ingest").Spec.Ports.Single(p => p.Name == "grpc-ingest");

        Assert.Equal(("false", "http://0.0.0.0:8081", "http://kc-kubecapture-ingest.kubecapture-system.svc:8081"), (env["Ingest__Tls"], env["Kestrel__Endpoints__Ingest__Url"], env["Ingest__AdvertisedUrl"]));
        // The certificate stays, for the admission webhooks, without the ingest Service's names.
        Assert.DoesNotContain(env, e => e.Key.StartsWith("ServingCertificate__DnsNames__", StringComparison.Ordinal) && e.Value.Contains("-ingest.", StringComparison.Ordinal));
        Assert.Contains(env, e => e.Key.StartsWith("ServingCertificate__DnsNames__", StringComparison.Ordinal) && e.Value == "kc-kubecapture-webhook.kubecapture-system.svc");
        Assert.Equal("kubernetes.io/h2c", port.AppProtocol);
        Assert.Empty(KubeCapture.Operator.Ingest.IngestTls.Problems(OperatorConfiguration(env)));
    }

    [Fact]
    public void A_mounted_certificate_serves_the_TLS_ingest_too_with_its_CA_file_for_the_agents()
    {
        var (code, output) = Helm("template", "kc", Chart, "--namespace", "kubecapture-system", "--set", "storage.endpoint=minio:9000", "--set", "subresources.enabled=false", "--set", "subresources.certificate.mode=Mounted", "--set", "subresources.certificate.secretName=kc-tls");
        Assert.True(code == 0, output);
        var pod = Assert.Single(KubernetesYaml.LoadAllFromString(output).OfType<V1Deployment>()).Spec.Template.Spec;
        var env = pod.Containers[0].Env.Where(e => e.ValueFrom is null).ToDictionary(e => e.Name, e => e.Value);

        Assert.Equal("kc-tls", pod.Volumes.Single(v => v.Secret is not null).Secret.SecretName);
        Assert.Equal(("Mounted", "/tls/ca.crt"), (env["ServingCertificate__Mode"], env["ServingCertificate__CaFile"]));
        Assert.Empty(KubeCapture.Operator.Ingest.IngestTls.Problems(OperatorConfiguration(env)));
    }

    [Fact]
    public void The_charts_retention_and_lock_policy_is_the_operators_cautious_default_and_bounds_what_it_renders()
    {
        var (code, output) = Helm("template", "kc", Chart, "--namespace", "kubecapture-system", "--set", "storage.endpoint=minio:9000");
        var values = Path.Combine(Directory.CreateTempSubdirectory("kcH-").FullName, "forensics.yaml");
        File.WriteAllText(values, "policy:\n  maxRetention: 8760h\n  locks:\n    governance: []\n    compliance: [forensics, audit]\n    legalHold: [forensics]\n");
        var (namedCode, named) = Helm("template", "kc", Chart, "--namespace", "kubecapture-system", "--set", "storage.endpoint=minio:9000", "-f", values);
        var (badCode, bad) = Helm("template", "kc", Chart, "--set", "storage.endpoint=minio:9000", "--set", "policy.locks.compliance={Not_A_Namespace}");
        Assert.True(code == 0 && namedCode == 0, output + named);

        var defaults = Bound(output);
        var operatorDefaults = new CapturePolicy();
        Assert.Equal((operatorDefaults.MaxRetention, operatorDefaults.Locks.Describe()), (defaults.MaxRetention, defaults.Locks.Describe()));
        Assert.Equal(("720h", "governance in every namespace; compliance nowhere; legalHold nowhere"), (defaults.MaxRetention, defaults.Locks.Describe()));
        var forensics = Bound(named);
        Assert.Equal(("8760h", "governance nowhere; compliance in forensics, audit; legalHold in forensics"), (forensics.MaxRetention, forensics.Locks.Describe()));
        Assert.NotEqual(0, badCode);
        Assert.Contains("policy.locks.compliance", bad, StringComparison.Ordinal);
        Directory.Delete(Path.GetDirectoryName(values)!, recursive: true);
    }

    [Fact]
    public void The_charts_recorder_limits_are_the_operators_defaults_and_a_bad_one_is_refused_at_render()
    {
        var (code, output) = Helm("template", "kc", Chart, "--set", "storage.endpoint=minio:9000");
        var (setCode, set) = Helm("template", "kc", Chart, "--set", "storage.endpoint=minio:9000", "--set", "policy.recorder.maxWindow=30m", "--set", "policy.recorder.maxRingBytes=512Mi", "--set", "policy.recorder.maxSnapshots=20");
        var (badCode, bad) = Helm("template", "kc", Chart, "--set", "storage.endpoint=minio:9000", "--set", "policy.recorder.maxSnapshots=1000");
        Assert.True(code == 0 && setCode == 0, output + set);

        var defaults = Bound(output).Recorder;
        var operatorDefaults = new RecorderPolicy();
        var raised = Bound(set).Recorder;

        Assert.Equal((operatorDefaults.MaxWindow, operatorDefaults.MaxRingBytes, operatorDefaults.MaxSnapshots), (defaults.MaxWindow, defaults.MaxRingBytes, defaults.MaxSnapshots));
        Assert.Equal(("30m", "512Mi", 20), (raised.MaxWindow, raised.MaxRingBytes, raised.MaxSnapshots));
        Assert.NotEqual(0, badCode);
        Assert.Contains("policy.recorder.maxSnapshots", bad, StringComparison.Ordinal);
    }

    /// <summary>The policy the operator binds from a rendered Deployment's env, validated as at startup.</summary>
    private static CapturePolicy Bound(string yaml)
    {
        var env = Assert.Single(KubernetesYaml.LoadAllFromString(yaml).OfType<V1Deployment>()).Spec.Template.Spec.Containers[0].Env
            .Where(e => e.ValueFrom is null).ToDictionary(e => e.Name, e => e.Value);
        var policy = OperatorConfiguration(env).GetSection(CapturePolicy.Section).Get<CapturePolicy>()!;
        policy.Validate();
        return policy;
    }

    /// <summary>The operator's configuration from the Deployment's env, as ASP.NET Core reads it (__ is :).</summary>
    private static IConfiguration OperatorConfiguration(Dictionary<string, string> env) =>
        new ConfigurationBuilder()
            .AddInMemoryCollection(env.Select(e => new KeyValuePair<string, string?>(e.Key.Replace("__", ":", StringComparison.Ordinal), e.Value)))
            .Build();

    [Fact]
    public void Mounted_certificate_mode_mounts_the_given_Secret_and_needs_its_name()
    {
        var (code, output) = Helm("template", "kc", Chart, "--namespace", "kubecapture-system", "--set", "storage.endpoint=minio:9000", "--set", "subresources.certificate.mode=Mounted", "--set", "subresources.certificate.secretName=kc-tls");
        Assert.True(code == 0, output);
        var pod = Assert.Single(KubernetesYaml.LoadAllFromString(output).OfType<V1Deployment>()).Spec.Template.Spec;
        var env = pod.Containers[0].Env.ToDictionary(e => e.Name, e => e.Value);
        var (missing, error) = Helm("template", "kc", Chart, "--set", "storage.endpoint=minio:9000", "--set", "subresources.certificate.mode=Mounted");

        Assert.Equal("kc-tls", pod.Volumes.Single(v => v.Secret is not null).Secret.SecretName);
        Assert.Equal("serving-certificate", pod.Containers[0].VolumeMounts.Single(m => m.MountPath == "/tls").Name);
        Assert.Equal(("Mounted", "/tls/tls.crt", "/tls/ca.crt"), (env["ServingCertificate__Mode"], env["ServingCertificate__CertificateFile"], env["ServingCertificate__CaFile"]));
        Assert.NotEqual(0, missing);
        Assert.Contains("subresources.certificate.secretName is required in Mounted mode", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData("corp-ca", "ClusterIssuer")]
    public void CertManager_mode_asks_cert_manager_for_a_certificate_with_every_name_the_operator_is_reached_by_and_mounts_its_Secret(string? issuer, string? kind)
    {
        string[] issuerSets = issuer is null ? [] : ["--set", $"subresources.certificate.issuerRef.name={issuer}", "--set", $"subresources.certificate.issuerRef.kind={kind}"];
        var (code, output) = Helm(["template", "kc", Chart, "--namespace", "kubecapture-system", "--set", "storage.endpoint=minio:9000", "--set", "subresources.certificate.mode=CertManager", .. issuerSets]);
        Assert.True(code == 0, output);
        var objects = KubernetesYaml.LoadAllFromString(output, new Dictionary<string, Type>
        {
            ["cert-manager.io/v1/Certificate"] = typeof(CertManagerObject),
            ["cert-manager.io/v1/Issuer"] = typeof(CertManagerObject),
        });
        var pod = Assert.Single(objects.OfType<V1Deployment>()).Spec.Template.Spec;
        var env = pod.Containers[0].Env.Where(e => e.ValueFrom is null).ToDictionary(e => e.Name, e => e.Value);
        var certManager = objects.OfType<CertManagerObject>().ToList();
        var serving = Assert.Single(certManager, o => o.Kind == "Certificate" && o.Spec.IsCA != true);

        // The names the Managed mode would give its own certificate: webhook, extension API, ingest Services.
        var (managedCode, managedOutput) = Helm("template", "kc", Chart, "--namespace", "kubecapture-system", "--set", "storage.endpoint=minio:9000");
        Assert.True(managedCode == 0, managedOutput);
        var managedEnv = Assert.Single(KubernetesYaml.LoadAllFromString(managedOutput).OfType<V1Deployment>()).Spec.Template.Spec.Containers[0].Env;
        var managedNames = managedEnv.Where(e => e.Name.StartsWith("ServingCertificate__DnsNames__", StringComparison.Ordinal)).Select(e => e.Value).ToList();
        Assert.Equal(6, managedNames.Count);
        Assert.Equal(managedNames, serving.Spec.DnsNames);
        Assert.Equal("kc-kubecapture-serving-tls", serving.Spec.SecretName);
        Assert.Equal(serving.Spec.SecretName, pod.Volumes.Single(v => v.Secret is not null).Secret.SecretName);
        Assert.Equal(("Mounted", "/tls/ca.crt"), (env["ServingCertificate__Mode"], env["ServingCertificate__CaFile"]));
        Assert.DoesNotContain(env.Keys, k => k.StartsWith("ServingCertificate__DnsNames__", StringComparison.Ordinal));
        Assert.Empty(KubeCapture.Operator.Ingest.IngestTls.Problems(OperatorConfiguration(env)));
        if (issuer is null)
        {
            // A CA of the release's own: self-signed Issuer -> CA Certificate -> CA Issuer -> the serving certificate.
            var ca = Assert.Single(certManager, o => o.Kind == "Certificate" && o.Spec.IsCA == true);
            var caIssuer = Assert.Single(certManager, o => o.Kind == "Issuer" && o.Spec.Ca is not null);
            Assert.Equal(ca.Spec.SecretName, caIssuer.Spec.Ca!.SecretName);
            Assert.Equal((caIssuer.Metadata.Name, "Issuer"), (serving.Spec.IssuerRef!.Name, serving.Spec.IssuerRef.Kind));
            Assert.Single(certManager, o => o.Kind == "Issuer" && o.Spec.SelfSigned is not null && ca.Spec.IssuerRef!.Name == o.Metadata.Name);
        }
        else
        {
            Assert.Equal((issuer, kind), (serving.Spec.IssuerRef!.Name, serving.Spec.IssuerRef.Kind));
            Assert.Single(certManager);
        }
    }

    /// <summary>The fields of cert-manager's Certificate and Issuer the chart sets (cert-manager.io/v1).</summary>
    private sealed class CertManagerObject : IKubernetesObject<V1ObjectMeta>
    {
        public string ApiVersion { get; set; } = "";

        public string Kind { get; set; } = "";

        public V1ObjectMeta Metadata { get; set; } = new();

        public CertManagerSpec Spec { get; set; } = new();
    }

    private sealed class CertManagerSpec
    {
        public string? SecretName { get; set; }

        public bool? IsCA { get; set; }

        public List<string>? DnsNames { get; set; }

        public CertManagerIssuerRef? IssuerRef { get; set; }

        public CertManagerCa? Ca { get; set; }

        public Dictionary<string, object>? SelfSigned { get; set; }
    }

    private sealed class CertManagerIssuerRef
    {
        public string Name { get; set; } = "";

        public string Kind { get; set; } = "";
    }

    private sealed class CertManagerCa
    {
        public string SecretName { get; set; } = "";
    }

    [Fact]
    public void Tracing_is_off_by_default_and_tracing_otlpEndpoint_gives_the_operator_the_standard_OTLP_exporter_settings_the_schema_checks()
    {
        var (off, plain) = Helm("template", "kc", Chart, "--set", "storage.endpoint=minio:9000");
        var (on, traced) = Helm("template", "kc", Chart, "--set", "storage.endpoint=minio:9000", "--set", "tracing.otlpEndpoint=http://otel-collector.observability:4317", "--set", "tracing.protocol=grpc");
        var (notUrl, notUrlOutput) = Helm("template", "kc", Chart, "--set", "storage.endpoint=minio:9000", "--set", "tracing.otlpEndpoint=otel-collector:4318");
        var (badProtocol, badProtocolOutput) = Helm("template", "kc", Chart, "--set", "storage.endpoint=minio:9000", "--set", "tracing.protocol=thrift");

        Assert.True(off == 0 && on == 0, plain + traced);
        static Dictionary<string, string> Env(string yaml) => Assert.Single(KubernetesYaml.LoadAllFromString(yaml).OfType<V1Deployment>()).Spec.Template.Spec.Containers[0].Env
            .Where(e => e.Value is not null).ToDictionary(e => e.Name, e => e.Value);
        Assert.DoesNotContain(Env(plain).Keys, k => k.StartsWith("OTEL_", StringComparison.Ordinal));
        var env = Env(traced);
        Assert.Equal(("http://otel-collector.observability:4317", "grpc"), (env[CaptureTracing.EndpointSetting], env["OTEL_EXPORTER_OTLP_PROTOCOL"]));
        Assert.NotEqual(0, notUrl);
        Assert.Contains("tracing.otlpEndpoint", notUrlOutput, StringComparison.Ordinal);
        Assert.NotEqual(0, badProtocol);
        Assert.Contains("tracing.protocol", badProtocolOutput, StringComparison.Ordinal);
    }

    [Fact]
    public void Helm_refuses_values_that_break_the_schema()
    {
        var (code, output) = Helm("template", "kc", Chart, "--set", "policy.maxSnaplen=0");
        Assert.NotEqual(0, code);
        Assert.Contains("maxSnaplen", output, StringComparison.Ordinal);
    }

    [Fact]
    public void The_CRD_is_a_structural_schema_with_a_description_on_every_field_printer_columns_and_CEL_rules()
    {
        var crd = KubernetesYaml.Deserialize<V1CustomResourceDefinition>(File.ReadAllText(Crd));
        Assert.Equal(["pcap"], crd.Spec.Names.ShortNames);
        Assert.Equal("Namespaced", crd.Spec.Scope);
        var version = Assert.Single(crd.Spec.Versions);
        Assert.Equal("v1alpha1", version.Name);
        Assert.NotNull(version.Subresources.Status);
        Assert.Equal(["Phase", "Target", "Packets", "Drops", "Findings", "Age", "Requested-By"], version.AdditionalPrinterColumns.Select(c => c.Name));
        Assert.Equal(@".metadata.annotations.kubecapture\.io/requested-by", version.AdditionalPrinterColumns.Last().JsonPath); // kubectl get pcap -o wide

        var spec = version.Schema.OpenAPIV3Schema.Properties["spec"];
        Assert.Equal(["reason", "target", "duration"], spec.Required);
        Assert.Equal(262144, spec.Properties["snaplen"].Maximum);
        Assert.Equal(0, spec.Properties["snaplen"].Minimum);
        Assert.Contains(spec.XKubernetesValidations, v => v.Rule.Contains("oldSelf", StringComparison.Ordinal) && v.Message.Contains("only spec.stop", StringComparison.Ordinal));
        Assert.Contains(spec.Properties["target"].XKubernetesValidations, v => v.Rule == "has(self.podName) != has(self.podSelector)");

        var missing = new List<string>();
        CheckDescriptions(version.Schema.OpenAPIV3Schema.Properties["spec"], "spec", missing);
        CheckDescriptions(version.Schema.OpenAPIV3Schema.Properties["status"], "status", missing);
        Assert.Empty(missing);
    }

    [Theory]
    [InlineData("reaching-us.yaml")]
    [InlineData("refused-or-dropped.yaml")]
    [InlineData("pod-headers-30s.yaml")]
    public void Each_example_is_a_PacketCapture_the_default_policy_accepts(string file)
    {
        var capture = KubernetesYaml.Deserialize<PacketCapture>(File.ReadAllText(Path.Combine(Root, "examples", file)));

        var verdict = new CapturePolicy().Check(capture);

        Assert.True(verdict.Allowed, verdict.Message);
        Assert.False(string.IsNullOrWhiteSpace(capture.Spec.Reason));
    }

    private static void CheckDescriptions(V1JSONSchemaProps schema, string path, List<string> missing)
    {
        if (string.IsNullOrWhiteSpace(schema.Description))
        {
            missing.Add(path);
        }

        foreach (var (name, child) in schema.Properties ?? new Dictionary<string, V1JSONSchemaProps>())
        {
            CheckDescriptions(child, $"{path}.{name}", missing);
        }

        if (schema.Items is V1JSONSchemaProps { Properties.Count: > 0 } items)
        {
            foreach (var (name, child) in items.Properties)
            {
                CheckDescriptions(child, $"{path}[].{name}", missing);
            }
        }
    }

    internal static (int Code, string Output) Helm(params string[] args)
    {
        var helm = Path.Combine(Root, ".tools", "bin", "helm");
        Assert.True(File.Exists(helm), $"{helm} is missing: run scripts/setup.sh");
        var info = new ProcessStartInfo(helm, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        info.Environment["HOME"] = Path.GetTempPath();
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, stdout.Result + stderr);
    }

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "KubeCapture.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("KubeCapture.sln not found above the test directory");
    }
}
