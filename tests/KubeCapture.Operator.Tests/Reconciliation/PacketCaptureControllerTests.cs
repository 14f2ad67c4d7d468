using System.Diagnostics;
using System.Security.Cryptography;
using k8s;
using k8s.Models;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Resources;
using KubeCapture.Contracts.Summary;
using KubeCapture.Operator.Admission;
using KubeCapture.Operator.Custody;
using KubeCapture.Operator.Finalizer;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Provenance;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Testing.Kubernetes;
using KubeCapture.Testing.Netns;
using KubeCapture.Testing.Pcap;

namespace KubeCapture.Operator.Tests.Reconciliation;

/// <summary>
/// The reconciler end to end against the API emulator, with the test kubelet running the real agent
/// inside a network namespace ("the pod") and the in-memory ingest double.
/// </summary>
public sealed class PacketCaptureControllerTests : IAsyncLifetime
{
    private OperatorHarness harness = null!;

    public async Task InitializeAsync()
    {
        harness = await OperatorHarness.StartAsync();
        harness.Emulator.AddNamespace("shop");
    }

    public async Task DisposeAsync() => await harness.DisposeAsync();

    [Fact]
    public async Task A_capture_injects_one_locked_down_container_captures_real_packets_and_reports_a_verified_artifact()
    {
        using var network = PodNetwork.Create();
        harness.Kubelet.AttachNetwork("shop", "api-1", network);
        harness.Emulator.AddPod("shop", "api-1");

        var created = await harness.StartCaptureAsync("shop", "ping", new PacketCaptureSpec
        {
            Reason = "is the request reaching us?",
            Target = new CaptureTarget { PodName = "api-1" },
            Filter = "icmp",
            MaxPackets = 6,
            Duration = "30s",
            Snaplen = 128,
        }, "api-1");
        var container = EphemeralContainerSpec.ContainerName(created.Metadata.Uid);
        network.PingFromClient(3);

        var done = await harness.WaitForPhaseAsync("shop", "ping", CapturePhase.Succeeded, TimeSpan.FromSeconds(30));

        var target = Assert.Single(done.Status!.Targets);
        Assert.Equal(("api-1", "node-1", container, TargetState.Succeeded), (target.Pod, target.Node, target.Container, target.State));
        Assert.Equal(6, target.Packets);
        Assert.Equal("count", target.StopReason);
        Assert.Equal(6, done.Status.Packets);
        var pcap = harness.Kubelet.PcapPath("shop", "api-1", container);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(await File.ReadAllBytesAsync(pcap))), target.Artifact!.Sha256);
        Assert.Equal(6, TcpdumpLines(pcap).Count(l => l.Contains("ICMP echo", StringComparison.Ordinal)));
        Assert.NotNull(target.Summary);
        foreach (var type in new[] { CaptureConditions.Accepted, CaptureConditions.Admitted, CaptureConditions.TargetsReady, CaptureConditions.Injected, CaptureConditions.Complete })
        {
            var condition = CaptureConditions.Find(done.Status, type);
            Assert.True(condition is { Status: "True", ObservedGeneration: 1 }, $"{type}: {KubernetesJson.Serialize(condition)}");
            Assert.True(condition.LastTransitionTime > DateTime.UtcNow.AddMinutes(-5));
        }

        var pod = await harness.Client.CoreV1.ReadNamespacedPodAsync("api-1", "shop");
        var injected = Assert.Single(pod.Spec.EphemeralContainers);
        Assert.Equal(container, injected.Name);
        Assert.Equal("kubecapture/agent:test", injected.Image);
        Assert.Equal(
            ["capture", "--ingest", "http://127.0.0.1:1", "--capture-uid", created.Metadata.Uid, "--capture-namespace", "shop", "--capture-name", "ping",
             "--pod", "api-1", "-i", "any", "-s", "128", "-c", "6", "--duration", "30s", "--max-bytes", "64Mi", "--retention", "168h", "--", "icmp"],
            injected.Args);
        // The token is no literal in the pod spec: the kubelet reads it from a Secret the capture owns.
        var token = Assert.Single(injected.Env);
        Assert.Equal(EphemeralContainerSpec.TokenVariable, token.Name);
        Assert.Null(token.Value);
        var secret = await harness.Client.CoreV1.ReadNamespacedSecretAsync(token.ValueFrom.SecretKeyRef.Name, "shop");
        Assert.True(harness.IngestDouble.Verify(new CaptureIdentity(created.Metadata.Uid, "shop", "ping", "api-1"), System.Text.Encoding.UTF8.GetString(secret.Data[token.ValueFrom.SecretKeyRef.Key])));
        var owner = Assert.Single(secret.Metadata.OwnerReferences);
        Assert.Equal((PacketCapture.KindName, "ping", created.Metadata.Uid, true), (owner.Kind, owner.Name, owner.Uid, owner.Controller));
        Assert.True(secret.Immutable);
        Assert.Equal(["NET_RAW"], injected.SecurityContext.Capabilities.Add);
        Assert.Equal(["ALL"], injected.SecurityContext.Capabilities.Drop);
        Assert.False(injected.SecurityContext.AllowPrivilegeEscalation);
        Assert.Null(injected.Ports);
        Assert.Null(injected.VolumeMounts);

        var events = await harness.Client.CoreV1.ListNamespacedEventAsync("shop");
        // One Event for the injection, on the pod; the capture's own Events say how it ended.
        Assert.Single(events.Items, e => e.InvolvedObject.Kind == "Pod" && e.InvolvedObject.Name == "api-1" && e.Reason == "CaptureStarted");
        Assert.Contains(events.Items, e => e.InvolvedObject.Kind == "PacketCapture" && e.Reason == "Succeeded");
        Assert.DoesNotContain(events.Items, e => e.InvolvedObject.Kind == "PacketCapture" && e.Reason == "Injected");
        Assert.Contains(CaptureFinalizer.Name, done.Metadata.Finalizers);
    }

    [Fact]
    public async Task With_the_stamp_required_an_unstamped_capture_fails_NotStamped_without_touching_its_pod_and_a_stamped_one_is_verified()
    {
        await using var strict = await OperatorHarness.StartAsync(options: o => o.RequireRequesterStamp = true);
        strict.Emulator.AddNamespace("shop");
        strict.Emulator.AddPod("shop", "api-1");
        var stamped = new PacketCapture
        {
            Metadata = new V1ObjectMeta
            {
                Name = "stamped",
                NamespaceProperty = "shop",
                Annotations = new Dictionary<string, string>(RequesterStamp.Annotations(new CaptureRequester { Username = "alice", Uid = "u-1", Groups = ["devs"] })),
            },
            Spec = new PacketCaptureSpec { Reason = "r", Target = new CaptureTarget { PodName = "absent" }, Duration = "10s" },
        };

        await strict.CreateCaptureAsync("shop", "unstamped", new PacketCaptureSpec { Reason = "r", Target = new CaptureTarget { PodName = "api-1" }, Duration = "10s" });
        await strict.Client.CustomObjects.CreateNamespacedCustomObjectAsync<PacketCapture>(stamped, PacketCapture.Group, PacketCapture.Version, "shop", PacketCapture.Plural);
        var refused = await strict.WaitForPhaseAsync("shop", "unstamped", CapturePhase.Failed);
        var verified = await strict.WaitForPhaseAsync("shop", "stamped", CapturePhase.Failed);

        var notStamped = CaptureConditions.Find(refused.Status, CaptureConditions.RequesterVerified);
        Assert.Equal(("False", "NotStamped"), (notStamped?.Status, notStamped?.Reason));
        Assert.StartsWith("the capture carries no requester stamped by admission (it has no kubecapture.io/requested-by annotation)", notStamped?.Message, StringComparison.Ordinal);
        Assert.Equal("NotStamped", CaptureConditions.Find(refused.Status, CaptureConditions.Complete)?.Reason);
        Assert.Null(CaptureConditions.Find(refused.Status, CaptureConditions.Accepted)); // nothing else was looked at
        Assert.Null((await strict.Client.CoreV1.ReadNamespacedPodAsync("api-1", "shop")).Spec.EphemeralContainers);
        var stampedCondition = CaptureConditions.Find(verified.Status, CaptureConditions.RequesterVerified);
        Assert.Equal(("True", "Stamped", "requested by alice, as kube-apiserver authenticated them"), (stampedCondition?.Status, stampedCondition?.Reason, stampedCondition?.Message));
        Assert.Equal("PodNotFound", CaptureConditions.Find(verified.Status, CaptureConditions.Complete)?.Reason);
    }

    [Fact]
    public async Task An_invalid_filter_fails_with_InvalidFilter_and_libpcaps_message_and_touches_no_pod()
    {
        harness.Emulator.AddPod("shop", "api-1");
        await harness.CreateCaptureAsync("shop", "bad-filter", Spec("api-1", filter: "tcp port http2x"));

        var failed = await harness.WaitForPhaseAsync("shop", "bad-filter", CapturePhase.Failed);

        var accepted = CaptureConditions.Find(failed.Status, CaptureConditions.Accepted)!;
        Assert.Equal(("False", "InvalidFilter"), (accepted.Status, accepted.Reason));
        Assert.Contains("http2x", accepted.Message, StringComparison.Ordinal);
        Assert.Equal("InvalidFilter", CaptureConditions.Find(failed.Status, CaptureConditions.Complete)!.Reason);
        Assert.Null((await harness.Client.CoreV1.ReadNamespacedPodAsync("api-1", "shop")).Spec.EphemeralContainers);
    }

    [Fact]
    public async Task A_missing_pod_fails_with_PodNotFound()
    {
        await harness.CreateCaptureAsync("shop", "no-pod", Spec("ghost"));

        var failed = await harness.WaitForPhaseAsync("shop", "no-pod", CapturePhase.Failed);

        var ready = CaptureConditions.Find(failed.Status, CaptureConditions.TargetsReady)!;
        Assert.Equal(("False", "PodNotFound"), (ready.Status, ready.Reason));
        Assert.Contains("'ghost' not found in namespace 'shop'", ready.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_pod_that_is_not_running_fails_with_PodNotRunning()
    {
        harness.Emulator.AddPod("shop", "starting", phase: "Pending");
        await harness.CreateCaptureAsync("shop", "not-running", Spec("starting"));

        var failed = await harness.WaitForPhaseAsync("shop", "not-running", CapturePhase.Failed);

        var ready = CaptureConditions.Find(failed.Status, CaptureConditions.TargetsReady)!;
        Assert.Equal(("False", "PodNotRunning"), (ready.Status, ready.Reason));
        Assert.Contains("is Pending", ready.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_restricted_namespace_is_refused_with_PodSecurityRestricted_before_any_injection()
    {
        harness.Emulator.AddNamespace("locked", new Dictionary<string, string> { [PodSecurityPreflight.EnforceLabel] = "restricted" });
        harness.Emulator.AddPod("locked", "api-1");
        await harness.CreateCaptureAsync("locked", "refused", Spec("api-1"));

        var failed = await harness.WaitForPhaseAsync("locked", "refused", CapturePhase.Failed);

        var ready = CaptureConditions.Find(failed.Status, CaptureConditions.TargetsReady)!;
        Assert.Equal(("False", "PodSecurityRestricted"), (ready.Status, ready.Reason));
        Assert.Contains("forbids the NET_RAW capability", ready.Message, StringComparison.Ordinal);
        Assert.Null((await harness.Client.CoreV1.ReadNamespacedPodAsync("api-1", "locked")).Spec.EphemeralContainers);
        Assert.Equal(0, harness.Kubelet.Starts);
    }

    [Fact]
    public async Task A_baseline_namespace_gets_a_container_that_adds_no_capability_and_the_condition_says_so()
    {
        harness.Kubelet.CommandOverride = _ => ["sleep", "30"];
        harness.Emulator.AddNamespace("base", new Dictionary<string, string> { [PodSecurityPreflight.EnforceLabel] = "baseline" });
        harness.Emulator.AddPod("base", "api-1");
        await harness.CreateCaptureAsync("base", "baseline", Spec("api-1"));

        var running = await harness.WaitForPhaseAsync("base", "baseline", CapturePhase.Running);

        var ready = CaptureConditions.Find(running.Status, CaptureConditions.TargetsReady)!;
        Assert.Equal(("True", "PodSecurityBaseline"), (ready.Status, ready.Reason));
        Assert.Contains("runtime's default NET_RAW", ready.Message, StringComparison.Ordinal);
        var injected = Assert.Single((await harness.Client.CoreV1.ReadNamespacedPodAsync("api-1", "base")).Spec.EphemeralContainers);
        Assert.Null(injected.SecurityContext.Capabilities.Add);
        Assert.DoesNotContain("ALL", injected.SecurityContext.Capabilities.Drop);
        Assert.DoesNotContain("NET_RAW", injected.SecurityContext.Capabilities.Drop);
        Assert.Contains("NET_BIND_SERVICE", injected.SecurityContext.Capabilities.Drop);
        Assert.Equal(13, injected.SecurityContext.Capabilities.Drop.Count);
        Assert.False(injected.SecurityContext.AllowPrivilegeEscalation);
    }

    [Theory]
    [InlineData("2h", 128, "spec.duration 2h is longer than the policy's maximum 1h")]
    [InlineData("30s", 0, "spec.snaplen 0 keeps payload beyond the policy's maximum of 128 bytes")]
    public async Task A_spec_beyond_policy_fails_with_PolicyExceeded_naming_the_limit(string duration, int snaplen, string message)
    {
        harness.Emulator.AddPod("shop", "api-1");
        await harness.CreateCaptureAsync("shop", "greedy", Spec("api-1", duration: duration, snaplen: snaplen));

        var failed = await harness.WaitForPhaseAsync("shop", "greedy", CapturePhase.Failed);

        var accepted = CaptureConditions.Find(failed.Status, CaptureConditions.Accepted)!;
        Assert.Equal(("False", "PolicyExceeded"), (accepted.Status, accepted.Reason));
        Assert.Contains(message, accepted.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_image_that_cannot_be_pulled_fails_with_ImagePullFailed()
    {
        harness.Kubelet.FailingImages["kubecapture/agent:test"] = true;
        harness.Emulator.AddPod("shop", "api-1");
        await harness.CreateCaptureAsync("shop", "no-image", Spec("api-1"));

        var failed = await harness.WaitForPhaseAsync("shop", "no-image", CapturePhase.Failed);

        var complete = CaptureConditions.Find(failed.Status, CaptureConditions.Complete)!;
        Assert.Equal(("False", "ImagePullFailed"), (complete.Status, complete.Reason));
        Assert.Contains("ImagePullBackOff", failed.Status!.Targets[0].Message, StringComparison.Ordinal);
        var events = await harness.Client.CoreV1.ListNamespacedEventAsync("shop");
        Assert.Contains(events.Items, e => e.Type == "Warning" && e.Reason == "ImagePullFailed");
    }

    [Fact]
    public async Task An_agent_that_crashes_fails_with_AgentCrashed_its_exit_code_and_last_words()
    {
        harness.Kubelet.CommandOverride = _ => ["sh", "-c", "echo 'kubecapture-agent: cannot open any: Operation not permitted' >&2; exit 3"];
        harness.Emulator.AddPod("shop", "api-1");
        await harness.CreateCaptureAsync("shop", "crash", Spec("api-1"));

        var failed = await harness.WaitForPhaseAsync("shop", "crash", CapturePhase.Failed);

        var target = Assert.Single(failed.Status!.Targets);
        Assert.Equal(("AgentCrashed", 3), (target.Reason, target.ExitCode));
        Assert.Contains("Operation not permitted", target.Message, StringComparison.Ordinal);
        Assert.Equal("AgentCrashed", CaptureConditions.Find(failed.Status, CaptureConditions.Complete)!.Reason);
    }

    [Fact]
    public async Task A_capture_that_goes_silent_fails_with_DeadlineExceeded_after_duration_and_grace()
    {
        harness.Kubelet.CommandOverride = _ => ["sleep", "60"];
        harness.Emulator.AddPod("shop", "api-1");
        var stopwatch = Stopwatch.StartNew();
        await harness.CreateCaptureAsync("shop", "silent", Spec("api-1", duration: "1s"));

        var failed = await harness.WaitForPhaseAsync("shop", "silent", CapturePhase.Failed, TimeSpan.FromSeconds(30));

        var grace = CapturePolicy.ParseDuration(harness.Options.Grace, "grace");
        Assert.True(stopwatch.Elapsed >= TimeSpan.FromSeconds(1) + grace, $"failed after {stopwatch.Elapsed}: before duration 1s + grace {grace}");
        var target = Assert.Single(failed.Status!.Targets);
        Assert.Equal("DeadlineExceeded", target.Reason);
        Assert.Equal("DeadlineExceeded", CaptureConditions.Find(failed.Status, CaptureConditions.Complete)!.Reason);
    }

    [Fact]
    public async Task A_hostNetwork_pod_is_refused_with_HostNetworkPod_and_no_container_is_added()
    {
        harness.Emulator.AddPod("shop", "node-agent", hostNetwork: true);
        await harness.CreateCaptureAsync("shop", "host-net", Spec("node-agent"));

        var failed = await harness.WaitForPhaseAsync("shop", "host-net", CapturePhase.Failed);

        var ready = CaptureConditions.Find(failed.Status, CaptureConditions.TargetsReady)!;
        Assert.Equal(("False", "HostNetworkPod"), (ready.Status, ready.Reason));
        Assert.Contains("hostNetwork: true", ready.Message, StringComparison.Ordinal);
        Assert.Equal(0, harness.Kubelet.Starts);
    }

    [Fact]
    public async Task The_reconciler_tells_the_ingest_each_targets_pod_IPs_and_again_after_a_restart()
    {
        harness.Kubelet.CommandOverride = _ => ["sleep", "30"];
        harness.Emulator.AddPod("shop", "api-1", podIp: "10.244.1.5");
        var created = await harness.CreateCaptureAsync("shop", "bound", Spec("api-1"));
        var identity = new CaptureIdentity(created.Metadata.Uid, "shop", "bound", "api-1");
        await harness.WaitForPhaseAsync("shop", "bound", CapturePhase.Running);
        Assert.Equal(["10.244.1.5"], harness.IngestDouble.ExpectedAddresses[identity]);

        await harness.KillOperatorAsync();
        harness.IngestDouble.Forget(created.Metadata.Uid); // a new operator process knows nothing
        harness.StartOperator();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!harness.IngestDouble.ExpectedAddresses.ContainsKey(identity) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        Assert.Equal(["10.244.1.5"], harness.IngestDouble.ExpectedAddresses.GetValueOrDefault(identity));
    }

    [Fact]
    public async Task Refused_uploads_are_counted_in_the_target_status_and_announced_as_UploadRefused_without_ending_the_capture()
    {
        harness.Kubelet.CommandOverride = _ => ["sleep", "30"];
        harness.Emulator.AddPod("shop", "api-1");
        var created = await harness.CreateCaptureAsync("shop", "refused", Spec("api-1"));
        var identity = new CaptureIdentity(created.Metadata.Uid, "shop", "refused", "api-1");
        await harness.WaitForPhaseAsync("shop", "refused", CapturePhase.Running);

        harness.IngestDouble.RefuseUpload(identity, "it comes from 10.0.0.9, but the pod's addresses are 169.254.0.2 (status.podIPs)");
        harness.IngestDouble.RefuseUpload(identity, "it comes from 10.0.0.10, but the pod's addresses are 169.254.0.2 (status.podIPs)");
        var counted = await harness.WaitForAsync("shop", "refused", c => c.Status?.Targets.FirstOrDefault()?.RefusedUploads == 2);
        harness.IngestDouble.RefuseUpload(identity, "it comes from 10.0.0.11, but the pod's addresses are 169.254.0.2 (status.podIPs)");
        var again = await harness.WaitForAsync("shop", "refused", c => c.Status?.Targets.FirstOrDefault()?.RefusedUploads == 3);

        Assert.Equal(CapturePhase.Running, again.Status!.Phase);
        Assert.Contains("10.0.0.11", again.Status.Targets[0].LastRefusal, StringComparison.Ordinal);
        Assert.Equal(0, harness.IngestDouble.Refusals(identity).Count);
        Assert.NotNull(counted);
        var events = (await harness.Client.CoreV1.ListNamespacedEventAsync("shop")).Items.Where(e => e.Reason == "UploadRefused").ToList();
        Assert.NotEmpty(events);
        Assert.All(events, e => Assert.Equal(("Warning", "refused"), (e.Type, e.InvolvedObject.Name)));
        Assert.Contains(events, e => e.Message.Contains("10.0.0.11", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_failed_upload_reported_by_the_ingest_fails_the_capture_with_UploadFailed()
    {
        harness.Kubelet.CommandOverride = _ => ["sleep", "30"];
        harness.Emulator.AddPod("shop", "api-1");
        var created = await harness.CreateCaptureAsync("shop", "lost-upload", Spec("api-1"));
        await harness.WaitForPhaseAsync("shop", "lost-upload", CapturePhase.Running);

        harness.IngestDouble.Report(new TargetUpload
        {
            Target = new CaptureIdentity(created.Metadata.Uid, "shop", "lost-upload", "api-1"),
            Phase = UploadPhase.Failed,
            Error = "SHA-256 mismatch: the agent says 00ff, the stored object is 11ee",
        });
        var failed = await harness.WaitForPhaseAsync("shop", "lost-upload", CapturePhase.Failed);

        Assert.Equal("UploadFailed", failed.Status!.Targets[0].Reason);
        Assert.Contains("SHA-256 mismatch", failed.Status.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_target_pod_deleted_mid_capture_fails_with_PodDeleted_and_its_address_binds_no_upload_any_more()
    {
        harness.Kubelet.CommandOverride = _ => ["sleep", "30"];
        harness.Emulator.AddPod("shop", "api-1");
        var created = await harness.CreateCaptureAsync("shop", "orphan", Spec("api-1"));
        var identity = new CaptureIdentity(created.Metadata.Uid, "shop", "orphan", "api-1");
        await harness.WaitForPhaseAsync("shop", "orphan", CapturePhase.Running);
        Assert.Equal(["169.254.0.2"], harness.IngestDouble.ExpectedAddresses[identity]);

        harness.Emulator.Store.Delete(ResourceType.Pods, "shop", "api-1");
        var failed = await harness.WaitForPhaseAsync("shop", "orphan", CapturePhase.Failed);

        Assert.Equal("PodDeleted", failed.Status!.Targets[0].Reason);
        Assert.Empty(harness.IngestDouble.ExpectedAddresses[identity]); // a pod given the same IP later cannot upload as this target
    }

    [Fact]
    public async Task An_agent_that_exits_cleanly_shows_Uploading_until_the_ingest_confirms_or_the_deadline_says_it_never_did()
    {
        harness.Kubelet.CommandOverride = _ => ["true"];
        harness.Emulator.AddPod("shop", "api-1");
        await harness.CreateCaptureAsync("shop", "unconfirmed", Spec("api-1", duration: "1s"));

        var uploading = await harness.WaitForPhaseAsync("shop", "unconfirmed", CapturePhase.Uploading);
        var failed = await harness.WaitForPhaseAsync("shop", "unconfirmed", CapturePhase.Failed, TimeSpan.FromSeconds(30));

        Assert.Equal((TargetState.Uploading, 0), (uploading.Status!.Targets[0].State, uploading.Status.Targets[0].ExitCode));
        Assert.Equal("DeadlineExceeded", failed.Status!.Targets[0].Reason);
        Assert.Contains("the ingest never confirmed the stored pcap", failed.Status.Targets[0].Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Captures_beyond_the_namespace_concurrency_limit_wait_Pending_with_the_reason()
    {
        harness.Policy.MaxConcurrentPerNamespace = 1;
        harness.Kubelet.CommandOverride = _ => ["sleep", "30"];
        harness.Emulator.AddPod("shop", "api-1");
        await harness.CreateCaptureAsync("shop", "first", Spec("api-1"));
        await harness.WaitForPhaseAsync("shop", "first", CapturePhase.Running);

        await harness.CreateCaptureAsync("shop", "second", Spec("api-1"));
        var waiting = await harness.WaitForAsync("shop", "second", c => CaptureConditions.Find(c.Status, CaptureConditions.Admitted) is not null);

        Assert.Equal(CapturePhase.Pending, waiting.Status!.Phase);
        var admitted = CaptureConditions.Find(waiting.Status, CaptureConditions.Admitted)!;
        Assert.Equal(("False", "ConcurrencyLimit"), (admitted.Status, admitted.Reason));
        Assert.Contains("policy allows 1 at a time", admitted.Message, StringComparison.Ordinal);
        Assert.Single((await harness.Client.CoreV1.ReadNamespacedPodAsync("api-1", "shop")).Spec.EphemeralContainers);

        // Deleting a waiting capture lets it go at once: nothing was started, nothing to keep.
        await harness.Client.CustomObjects.DeleteNamespacedCustomObjectAsync(PacketCapture.Group, PacketCapture.Version, "shop", PacketCapture.Plural, "second");
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (await harness.GetCaptureAsync("shop", "second") is not null && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        Assert.Null(await harness.GetCaptureAsync("shop", "second"));
        Assert.Single((await harness.Client.CoreV1.ReadNamespacedPodAsync("api-1", "shop")).Spec.EphemeralContainers);
    }

    [Fact]
    public async Task A_namespace_outside_the_allowed_list_fails_with_NamespaceNotAllowed()
    {
        harness.Policy.AllowedNamespaces = ["elsewhere"];
        harness.Emulator.AddPod("shop", "api-1");
        await harness.CreateCaptureAsync("shop", "not-here", Spec("api-1"));

        var failed = await harness.WaitForPhaseAsync("shop", "not-here", CapturePhase.Failed);

        Assert.Equal("NamespaceNotAllowed", CaptureConditions.Find(failed.Status, CaptureConditions.Accepted)!.Reason);
    }

    [Fact]
    public async Task An_operator_killed_between_injecting_and_recording_adds_no_second_container_and_the_capture_completes()
    {
        using var network = PodNetwork.Create();
        harness.Kubelet.AttachNetwork("shop", "api-1", network);
        harness.Emulator.AddPod("shop", "api-1");
        // Once the container is in the pod, every status write fails: as if the process died right
        // after the PATCH, before recording that it had injected.
        var injected = new TaskCompletionSource();
        harness.Emulator.Store.Changed += e =>
        {
            if (e.Resource == ResourceType.Pods && e.Object["spec"]?["ephemeralContainers"] is not null && injected.TrySetResult())
            {
                harness.Emulator.Faults.FailNext(1000, System.Net.HttpStatusCode.InternalServerError, "PUT", "/packetcaptures/restart/status");
            }
        };

        await harness.CreateCaptureAsync("shop", "restart", Spec("api-1", duration: "2s"));
        await injected.Task.WaitAsync(TimeSpan.FromSeconds(20));
        await harness.KillOperatorAsync();
        // Nothing recorded the target: the next operator finds it from the pod that carries the capture's container.
        Assert.Empty((await harness.GetCaptureAsync("shop", "restart"))!.Status?.Targets ?? []);

        ClearFaults(harness.Emulator);
        harness.StartOperator();
        var done = await harness.WaitForPhaseAsync("shop", "restart", CapturePhase.Succeeded, TimeSpan.FromSeconds(30));

        Assert.Equal("duration", done.Status!.Targets[0].StopReason);
        Assert.Single((await harness.Client.CoreV1.ReadNamespacedPodAsync("api-1", "shop")).Spec.EphemeralContainers);
        Assert.Equal(1, harness.Kubelet.Starts);
    }

    [Fact]
    public async Task Server_errors_and_slow_responses_are_retried_without_a_second_container()
    {
        harness.Kubelet.CommandOverride = _ => ["sleep", "30"];
        harness.Emulator.AddPod("shop", "api-1");
        harness.Emulator.Faults.FailNext(2, System.Net.HttpStatusCode.InternalServerError, "PATCH", "/ephemeralcontainers");
        harness.Emulator.Faults.FailNext(1, System.Net.HttpStatusCode.ServiceUnavailable, "PUT", "/packetcaptures/flaky/status");
        harness.Emulator.Faults.Latency = TimeSpan.FromMilliseconds(50);

        await harness.CreateCaptureAsync("shop", "flaky", Spec("api-1"));
        var running = await harness.WaitForPhaseAsync("shop", "flaky", CapturePhase.Running, TimeSpan.FromSeconds(30));

        Assert.Equal(TargetState.Capturing, running.Status!.Targets[0].State);
        Assert.Single((await harness.Client.CoreV1.ReadNamespacedPodAsync("api-1", "shop")).Spec.EphemeralContainers);
        Assert.Equal(3, harness.Emulator.Requests.Count(r => r.StartsWith("PATCH", StringComparison.Ordinal) && r.Contains("/ephemeralcontainers", StringComparison.Ordinal)));
        Assert.Equal(1, harness.Kubelet.Starts);
    }

    [Fact]
    public async Task Throttled_429_answers_are_retried_after_their_Retry_After_and_5xx_answers_with_backoff_and_no_capture_is_dropped()
    {
        harness.Kubelet.CommandOverride = _ => ["sleep", "30"];
        foreach (var pod in new[] { "api-0", "api-1", "api-2" })
        {
            harness.Emulator.AddPod("shop", pod);
        }

        // API Priority and Fairness throttles the container patch of one capture (twice, Retry-After 1 s)
        // and the status write of another; the server fails the finalizer patch of the third.
        harness.Emulator.Faults.FailNext(2, System.Net.HttpStatusCode.TooManyRequests, "PATCH", "/pods/api-0/ephemeralcontainers", TimeSpan.FromSeconds(1));
        harness.Emulator.Faults.FailNext(2, System.Net.HttpStatusCode.TooManyRequests, "PUT", "/packetcaptures/throttled-1/status", TimeSpan.FromSeconds(1));
        harness.Emulator.Faults.FailNext(3, System.Net.HttpStatusCode.ServiceUnavailable, "PATCH", "/packetcaptures/throttled-2");

        for (var i = 0; i < 3; i++)
        {
            await harness.CreateCaptureAsync("shop", $"throttled-{i}", Spec($"api-{i}"));
        }

        for (var i = 0; i < 3; i++)
        {
            var running = await harness.WaitForPhaseAsync("shop", $"throttled-{i}", CapturePhase.Running, TimeSpan.FromSeconds(30));
            Assert.Equal(TargetState.Capturing, Assert.Single(running.Status!.Targets).State);
            Assert.Single((await harness.Client.CoreV1.ReadNamespacedPodAsync($"api-{i}", "shop")).Spec.EphemeralContainers);
        }

        Assert.Equal(3, harness.Kubelet.Starts);
        // Each retry after a 429 came no sooner than the server asked (the backoff alone is 100 ms, then 200 ms).
        foreach (var path in new[] { "PATCH /api/v1/namespaces/shop/pods/api-0/ephemeralcontainers", "/packetcaptures/throttled-1/status" })
        {
            var times = harness.Emulator.TimedRequests.Where(r => r.Request.Contains(path, StringComparison.Ordinal)).Select(r => r.At).ToList();
            Assert.True(times.Count >= 3, $"{path}: {times.Count} requests");
            Assert.True(times[1] - times[0] >= TimeSpan.FromMilliseconds(950), $"{path}: retried after {(times[1] - times[0]).TotalMilliseconds} ms");
            Assert.True(times[2] - times[1] >= TimeSpan.FromMilliseconds(950), $"{path}: retried after {(times[2] - times[1]).TotalMilliseconds} ms");
        }
    }

    [Fact]
    public async Task A_throttled_CaptureStarted_Event_does_not_hold_the_capture_back_and_is_recorded_after_its_Retry_After()
    {
        harness.Kubelet.CommandOverride = _ => ["sleep", "30"];
        harness.Emulator.AddPod("shop", "api-1");
        harness.Emulator.Faults.FailNext(1, System.Net.HttpStatusCode.TooManyRequests, "POST", "/api/v1/namespaces/shop/events", TimeSpan.FromSeconds(5));

        await harness.CreateCaptureAsync("shop", "quiet-events", Spec("api-1"));
        await harness.WaitForPhaseAsync("shop", "quiet-events", CapturePhase.Running, TimeSpan.FromSeconds(30));
        List<DateTimeOffset> EventPosts() => [.. harness.Emulator.TimedRequests.Where(r => r.Request.StartsWith("POST /api/v1/namespaces/shop/events", StringComparison.Ordinal)).Select(r => r.At)];

        // Running while the Event still waits for its retry (the reconcile did not wait for it).
        Assert.Single(EventPosts());
        Assert.DoesNotContain((await harness.Client.CoreV1.ListNamespacedEventAsync("shop")).Items, e => e.Reason == "CaptureStarted");
        for (var deadline = DateTime.UtcNow.AddSeconds(30); EventPosts().Count < 2 && DateTime.UtcNow < deadline;)
        {
            await Task.Delay(200);
        }

        var posts = EventPosts();
        Assert.True(posts.Count >= 2 && posts[1] - posts[0] >= TimeSpan.FromSeconds(4.9), $"{posts.Count} Event POSTs: {string.Join(", ", posts.Select(p => p.ToString("HH:mm:ss.fff", System.Globalization.CultureInfo.InvariantCulture)))}");
        var started = Assert.Single((await harness.Client.CoreV1.ListNamespacedEventAsync("shop")).Items, e => e.Reason == "CaptureStarted");
        Assert.Equal("api-1", started.InvolvedObject.Name);
        Assert.True(started.FirstTimestamp < posts[1].UtcDateTime, "the Event keeps the time it happened, not the time it was sent");
    }

    [Fact]
    public async Task A_cut_watch_with_compacted_history_is_relisted_and_new_captures_are_still_reconciled()
    {
        harness.Emulator.AddPod("shop", "api-1");
        await harness.CreateCaptureAsync("shop", "before-cut", Spec("api-1", filter: "bogus filter words"));
        await harness.WaitForPhaseAsync("shop", "before-cut", CapturePhase.Failed);
        var lists = harness.Operator!.Captures.Lists;

        // Cut the watch and keep the watcher away (its next requests fail) while a capture is created
        // and history is compacted: it comes back with a resourceVersion that is gone.
        harness.Emulator.Faults.FailNext(2, System.Net.HttpStatusCode.InternalServerError, "GET", "v1alpha1/packetcaptures");
        Assert.True(harness.Emulator.Store.DropWatches() >= 1);
        await harness.CreateCaptureAsync("shop", "after-cut", Spec("api-1", filter: "more bogus words"));
        harness.Emulator.Store.Compact();

        var failed = await harness.WaitForPhaseAsync("shop", "after-cut", CapturePhase.Failed);
        Assert.Equal("InvalidFilter", CaptureConditions.Find(failed.Status, CaptureConditions.Accepted)!.Reason);
        Assert.True(harness.Operator.Captures.Lists > lists, "the watcher should have listed again after 410 Gone");
    }

    [Fact]
    public async Task Setting_spec_stop_tells_the_agent_to_stop_and_what_it_captured_is_kept()
    {
        using var network = PodNetwork.Create();
        harness.Kubelet.AttachNetwork("shop", "api-1", network);
        harness.Emulator.AddPod("shop", "api-1");
        var created = await harness.StartCaptureAsync("shop", "long", Spec("api-1", duration: "5m", filter: "icmp"), "api-1");
        network.PingFromClient(2);
        // libpcap hands packets over when the ring block retires (the agent's 100 ms read timeout);
        // a stop within that window loses the newest ones (the agent does not drain on SIGTERM).
        await Task.Delay(1500);

        var stopwatch = Stopwatch.StartNew();
        await harness.Client.CustomObjects.PatchNamespacedCustomObjectAsync(new V1Patch("""{"spec":{"stop":true}}""", V1Patch.PatchType.MergePatch),
            PacketCapture.Group, PacketCapture.Version, "shop", PacketCapture.Plural, "long");
        var done = await harness.WaitForPhaseAsync("shop", "long", CapturePhase.Succeeded, TimeSpan.FromSeconds(30));

        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(30));
        Assert.True(harness.IngestDouble.StopRequests.ContainsKey(created.Metadata.Uid));
        Assert.Equal(4, done.Status!.Targets[0].Packets);
        Assert.Equal(2, done.Metadata.Generation);
        Assert.All(done.Status.Conditions, c => Assert.Equal(2, c.ObservedGeneration));
    }

    [Fact]
    public async Task Deleting_a_running_capture_stops_it_keeps_the_pcap_and_then_releases_the_finalizer()
    {
        using var network = PodNetwork.Create();
        harness.Kubelet.AttachNetwork("shop", "api-1", network);
        harness.Emulator.AddPod("shop", "api-1");
        var created = await harness.StartCaptureAsync("shop", "doomed", Spec("api-1", duration: "5m"), "api-1");
        var container = EphemeralContainerSpec.ContainerName(created.Metadata.Uid);

        await harness.Client.CustomObjects.DeleteNamespacedCustomObjectAsync(PacketCapture.Group, PacketCapture.Version, "shop", PacketCapture.Plural, "doomed");
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (await harness.GetCaptureAsync("shop", "doomed") is not null && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        Assert.Null(await harness.GetCaptureAsync("shop", "doomed"));
        Assert.True(harness.IngestDouble.StopRequests.ContainsKey(created.Metadata.Uid));
        Assert.True(File.Exists(harness.Kubelet.PcapPath("shop", "api-1", container)));
        var upload = await harness.Ingest.GetAsync(new CaptureIdentity(created.Metadata.Uid, "shop", "doomed", "api-1"), CancellationToken.None);
        Assert.Equal(UploadPhase.Finished, upload?.Phase);
    }

    [Fact]
    public async Task A_selector_capture_runs_one_container_per_pod_and_reports_each_target()
    {
        using var first = PodNetwork.Create();
        using var second = PodNetwork.Create();
        harness.Kubelet.AttachNetwork("shop", "web-1", first);
        harness.Kubelet.AttachNetwork("shop", "web-2", second);
        harness.Emulator.AddPod("shop", "web-1", labels: new Dictionary<string, string> { ["app"] = "web" }, node: "node-a");
        harness.Emulator.AddPod("shop", "web-2", labels: new Dictionary<string, string> { ["app"] = "web" }, node: "node-b");

        await harness.CreateCaptureAsync("shop", "fleet", new PacketCaptureSpec
        {
            Reason = "which replica drops?",
            Target = new CaptureTarget { PodSelector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["app"] = "web" } } },
            Duration = "2s",
        });
        var done = await harness.WaitForPhaseAsync("shop", "fleet", CapturePhase.Succeeded, TimeSpan.FromSeconds(30));

        Assert.Equal([("web-1", "node-a"), ("web-2", "node-b")], done.Status!.Targets.Select(t => (t.Pod, t.Node!)));
        Assert.All(done.Status.Targets, t => Assert.Equal(("duration", TargetState.Succeeded), (t.StopReason, t.State)));
        Assert.Equal("web-1,web-2", done.Status.TargetSummary);
    }

    [Fact]
    public async Task Two_pods_captured_together_are_compared_and_a_reset_the_middlebox_between_them_forged_is_a_capture_finding_first()
    {
        // The middlebox lets the handshake through and answers the request in the server's name.
        var (done, container) = await CaptureWebAndDbThroughMiddleboxAsync("ends", "connections between web and db die", "small.txt", 1000, 128,
            "tcp dport 8000 tcp flags & psh == psh reject with tcp reset",
            async (lab, url) => Assert.Equal(56, (await lab.Client.CurlAsync(url)).ExitCode)); // connection reset

        var status = done.Status!;
        var web = status.Targets.Single(t => t.Pod == "web");
        var db = status.Targets.Single(t => t.Pod == "db");
        Assert.Contains(web.Findings!, f => f.Type == FindingTypes.ResetSuspectedForged);
        Assert.Contains(db.Findings!, f => f.Type == FindingTypes.NoDataAfterHandshake);
        var compared = Assert.Single(status.Findings!, f => f.Type == FindingTypes.ResetFromMiddlebox);
        Assert.Same(compared, status.Findings![0]); // it explains the others: first
        Assert.Equal(string.Join(',', status.Targets.Select(t => t.Pod)), compared.Target);
        Assert.Contains("the server's own capture shows it never sent one", compared.Message, StringComparison.Ordinal);
        Assert.Equal(3, status.FindingCount);
        // Its packet number is the RST in the client pod's pcap.
        var resets = await Tshark.FieldsAsync(harness.Kubelet.PcapPath("shop", "web", container), ["frame.number"], "tcp.flags.reset == 1");
        Assert.Equal(resets.Select(f => long.Parse(f[0], System.Globalization.CultureInfo.InvariantCulture)), compared.Evidence.PacketNumbers);
    }

    [Fact]
    public async Task Two_pods_captured_together_with_loss_between_them_in_one_direction_get_a_LossOnOneLeg_finding_with_that_direction()
    {
        // Every fifth full-size segment from the server toward the client is lost in the middlebox.
        long dropped = 0;
        var (done, container) = await CaptureWebAndDbThroughMiddleboxAsync("lossy", "downloads from db are slow", "200k.bin", 204_800, 96,
            "tcp sport 8000 meta length > 1000 numgen inc mod 5 == 0 counter drop",
            async (lab, url) =>
            {
                Assert.Equal("200", (await lab.Client.CurlAsync(url, TimeSpan.FromSeconds(20))).Stdout);
                dropped = await lab.Middlebox.NftablesCounterPacketsAsync("kcmt", "relay");
            });


        Assert.True(dropped > 0);
        var loss = Assert.Single(done.Status!.Findings!, f => f.Type == FindingTypes.LossOnOneLeg);
        Assert.Equal(string.Join(',', done.Status.Targets.Select(t => t.Pod)), loss.Target);
        Assert.Equal(["server-to-client"], loss.Evidence.Indicators);
        // The bytes lost: what the server's pcap shows sent minus what the client's shows arrived (tshark).
        var sent = (await Tshark.FieldsAsync(harness.Kubelet.PcapPath("shop", "db", container), ["tcp.len"], "tcp.srcport == 8000")).Sum(f => long.Parse(f[0], System.Globalization.CultureInfo.InvariantCulture));
        var arrived = (await Tshark.FieldsAsync(harness.Kubelet.PcapPath("shop", "web", container), ["tcp.len"], "tcp.srcport == 8000")).Sum(f => long.Parse(f[0], System.Globalization.CultureInfo.InvariantCulture));
        Assert.Contains($"{sent - arrived} of the {sent} payload bytes the server sent toward the client", loss.Message, StringComparison.Ordinal);
        Assert.Contains(done.Status.Targets.Single(t => t.Pod == "db").Findings!, f => f.Type == FindingTypes.Retransmissions);
    }

    [Fact]
    public async Task A_pod_at_its_capture_container_cap_is_refused_with_CaptureContainerLimit()
    {
        harness.Options.MaxCaptureContainersPerPod = 1;
        harness.Kubelet.CommandOverride = _ => ["true"];
        harness.Emulator.AddPod("shop", "api-1");
        await harness.CreateCaptureAsync("shop", "one", Spec("api-1", filter: "tcp"));
        await harness.WaitForAsync("shop", "one", c => c.Status?.Targets.Count > 0);

        await harness.CreateCaptureAsync("shop", "two", Spec("api-1", filter: "tcp"));
        var failed = await harness.WaitForPhaseAsync("shop", "two", CapturePhase.Failed);

        Assert.Equal("CaptureContainerLimit", CaptureConditions.Find(failed.Status, CaptureConditions.TargetsReady)!.Reason);
        Assert.Single((await harness.Client.CoreV1.ReadNamespacedPodAsync("api-1", "shop")).Spec.EphemeralContainers);
    }

    /// <summary>
    /// Client pod "web" and server pod "db" (HTTP on 8000 serving <paramref name="file"/>), with a
    /// middlebox between them whose nftables forward rule is <paramref name="relayRule"/>; one
    /// capture of both pods (podSelector), <paramref name="traffic"/> while both agents listen, then
    /// stopped. The succeeded capture and its container name.
    /// </summary>
    private async Task<(PacketCapture Done, string Container)> CaptureWebAndDbThroughMiddleboxAsync(
        string name, string reason, string file, int size, int snaplen, string relayRule, Func<MiddleboxLab, string, Task> traffic)
    {
        var labels = new Dictionary<string, string> { ["app"] = name };
        using var clientPod = PodNetwork.Create();
        using var serverPod = PodNetwork.Create();
        harness.Kubelet.AttachNetwork("shop", "web", clientPod);
        harness.Kubelet.AttachNetwork("shop", "db", serverPod);
        harness.Emulator.AddPod("shop", "web", labels: labels);
        harness.Emulator.AddPod("shop", "db", labels: labels);
        await using var lab = await MiddleboxLab.JoinAsync(clientPod.PodNamespace, serverPod.PodNamespace);
        await using var http = await lab.Server.StartHttpServerAsync(8000, new Dictionary<string, int> { [file] = size });
        await lab.Middlebox.AddNftablesAsync($$"""
            table inet kcmt {
              chain relay { type filter hook forward priority 0; {{relayRule}}; }
            }
            """);

        var created = await harness.StartCaptureAsync("shop", name, new PacketCaptureSpec
        {
            Reason = reason,
            Target = new CaptureTarget { PodSelector = new V1LabelSelector { MatchLabels = labels } },
            Filter = "tcp port 8000",
            Duration = "60s",
            Snaplen = snaplen,
        }, "web", "db");
        var container = EphemeralContainerSpec.ContainerName(created.Metadata.Uid);
        await traffic(lab, http.Url(file));
        await Task.Delay(500);
        await harness.Client.StopPacketCaptureAsync("shop", name);
        return (await harness.WaitForPhaseAsync("shop", name, CapturePhase.Succeeded, TimeSpan.FromSeconds(30)), container);
    }

    private static void ClearFaults(KubernetesApiEmulator emulator)
    {
        // Drain the injected failures left over from the "crash".
        while (emulator.Faults.TakeFailure("PUT", "/packetcaptures/restart/status") is not null)
        {
        }
    }

    private static PacketCaptureSpec Spec(string pod, string? filter = null, string duration = "30s", int snaplen = 128) => new()
    {
        Reason = "test",
        Target = new CaptureTarget { PodName = pod },
        Filter = filter,
        Duration = duration,
        Snaplen = snaplen,
    };

    private static List<string> TcpdumpLines(string pcap)
    {
        var info = new ProcessStartInfo("tcpdump", ["-nn", "-r", pcap]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return [.. output.Split('\n', StringSplitOptions.RemoveEmptyEntries)];
    }
}
