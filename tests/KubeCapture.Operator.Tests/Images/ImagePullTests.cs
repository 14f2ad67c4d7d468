using KubeCapture.Contracts.Resources;
using KubeCapture.Testing.Containers;
using KubeCapture.Testing.Kubernetes;

namespace KubeCapture.Operator.Tests.Images;

/// <summary>
/// The test kubelet running containers from their images (as the end-to-end suite does): an agent
/// image the node does not have is reported as the kubelet reports it (waiting, ErrImagePull with
/// the runtime's message), and the operator turns that into ImagePullFailed.
/// </summary>
public sealed class ImagePullTests
{
    [ImagesFact]
    public async Task An_agent_image_the_node_does_not_have_waits_in_ErrImagePull_and_the_capture_fails_ImagePullFailed()
    {
        ContainerImages.Require();
        const string missing = "kubecapture/agent:0.0.0-not-built";
        await using var harness = await OperatorHarness.StartAsync(options: o => o.AgentImage = missing, mode: AgentMode.Cluster);
        harness.Kubelet.RunImages = true;
        harness.Emulator.AddNamespace("shop");
        harness.Emulator.AddPod("shop", "api-1");
        await harness.CreateCaptureAsync("shop", "no-image", new PacketCaptureSpec
        {
            Reason = "which image does the node have?",
            Target = new CaptureTarget { PodName = "api-1" },
            Duration = "30s",
        });

        var failed = await harness.WaitForPhaseAsync("shop", "no-image", CapturePhase.Failed);

        var complete = CaptureConditions.Find(failed.Status, CaptureConditions.Complete)!;
        Assert.Equal(("False", "ImagePullFailed"), (complete.Status, complete.Reason));
        Assert.Contains($"Failed to pull image \"{missing}\": image not known", failed.Status!.Targets[0].Message, StringComparison.Ordinal);
        Assert.Contains("ErrImagePull", failed.Status.Targets[0].Message, StringComparison.Ordinal);
    }
}
