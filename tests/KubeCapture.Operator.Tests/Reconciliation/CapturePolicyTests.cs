using k8s.Models;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Resources;

namespace KubeCapture.Operator.Tests.Reconciliation;

public sealed class CapturePolicyTests
{
    [Theory]
    [InlineData("", "tcp", "30s", "InvalidSpec", "spec.reason is required")]
    [InlineData("r", "tcp", "", "InvalidSpec", "spec.duration: required")]
    [InlineData("r", "tcp", "forever", "InvalidSpec", "invalid duration 'forever'")]
    [InlineData("r", "tcp and", "30s", "InvalidFilter", "spec.filter: invalid filter 'tcp and'")]
    [InlineData("r", "", "30s", "FilterRequired", "spec.filter is required by policy")]
    public void A_bad_spec_is_refused_with_a_reason_and_a_message_naming_the_field(string reason, string filter, string duration, string expectedReason, string expectedMessage)
    {
        var policy = new CapturePolicy { RequireFilter = true };

        var verdict = policy.Check(Capture(reason, filter, duration));

        Assert.False(verdict.Allowed);
        Assert.Equal(expectedReason, verdict.Reason);
        Assert.Contains(expectedMessage, verdict.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Payload_capture_is_allowed_only_when_policy_raises_the_snaplen_ceiling()
    {
        var capture = Capture("r", "tcp port 443", "30s");
        capture.Spec.Snaplen = 1500;

        Assert.Equal("PolicyExceeded", new CapturePolicy().Check(capture).Reason);
        Assert.True(new CapturePolicy { MaxSnaplen = 1500 }.Check(capture).Allowed);
    }

    [Fact]
    public void A_byte_ceiling_beyond_policy_is_PolicyExceeded()
    {
        var capture = Capture("r", "tcp", "30s");
        capture.Spec.MaxBytes = "2Gi";

        var verdict = new CapturePolicy { MaxBytes = "1Gi" }.Check(capture);

        Assert.Equal(("PolicyExceeded", "spec.maxBytes 2Gi is more than the policy's maximum 1Gi"), (verdict.Reason, verdict.Message));
    }

    [Fact]
    public void A_policy_that_requires_a_lock_refuses_an_unlocked_capture_and_accepts_a_locked_one()
    {
        var policy = new CapturePolicy { RequireLock = true };
        var capture = Capture("r", "tcp", "30s");

        var refused = policy.Check(capture);
        Assert.Equal(("LockRequired", false), (refused.Reason, refused.Allowed));
        Assert.Contains("spec.retention.lock is 'none', but policy requires governance or compliance", refused.Message, StringComparison.Ordinal);
        capture.Spec.Retention = new CaptureRetention { Ttl = "24h", Lock = "governance" };
        Assert.True(policy.Check(capture).Allowed);
    }

    [Fact]
    public void A_malformed_policy_fails_at_startup_naming_the_key() =>
        Assert.Contains("Policy:MaxDuration", Assert.Throws<OperatorConfigurationException>(() => new CapturePolicy { MaxDuration = "soon" }.Validate()).Message, StringComparison.Ordinal);

    private static PacketCapture Capture(string reason, string filter, string duration) => new()
    {
        Metadata = new V1ObjectMeta { Name = "c", NamespaceProperty = "shop", Uid = "u" },
        Spec = new PacketCaptureSpec { Reason = reason, Filter = filter, Duration = duration, Target = new CaptureTarget { PodName = "p" } },
    };
}
