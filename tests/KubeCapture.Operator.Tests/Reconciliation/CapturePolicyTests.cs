using k8s.Models;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Configuration;
using KubeCapture.Operator.Reconciliation;

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

    [Theory]
    [InlineData("876000h", "none", false, "spec.retention.ttl 876000h is longer than the policy's maximum retention 720h (Policy:MaxRetention)")]
    [InlineData("721h", "governance", false, "spec.retention.ttl 721h is longer than the policy's maximum retention 720h")]
    [InlineData("24h", "compliance", false, "spec.retention.lock asks for a compliance lock, which the policy does not allow in namespace 'shop' (Policy:Locks allows governance in every namespace; compliance nowhere; legalHold nowhere): a compliance lock cannot be shortened or removed by anyone")]
    [InlineData("24h", "none", true, "spec.retention.legalHold asks for a legal hold, which the policy does not allow in namespace 'shop'")]
    public void By_default_retention_is_bounded_to_30_days_and_only_governance_locks_are_allowed(string ttl, string lockMode, bool legalHold, string expected)
    {
        var capture = Capture("r", "tcp", "30s");
        capture.Spec.Retention = new CaptureRetention { Ttl = ttl, Lock = lockMode, LegalHold = legalHold };

        var verdict = new CapturePolicy().Check(capture);

        Assert.Equal(("PolicyExceeded", false), (verdict.Reason, verdict.Allowed));
        Assert.Contains(expected, verdict.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_governance_lock_within_the_longest_retention_is_accepted_by_default()
    {
        var capture = Capture("r", "tcp", "30s");
        capture.Spec.Retention = new CaptureRetention { Ttl = "720h", Lock = "governance" };

        Assert.True(new CapturePolicy().Check(capture).Allowed);
    }

    [Fact]
    public void Compliance_locks_and_legal_holds_are_allowed_only_in_the_namespaces_the_policy_names()
    {
        var policy = new CapturePolicy { MaxRetention = "8760h", Locks = new LockPolicy { Governance = "", Compliance = "forensics, audit", LegalHold = "forensics" } };
        var inForensics = Capture("r", "tcp", "30s");
        inForensics.Metadata.NamespaceProperty = "forensics";
        inForensics.Spec.Retention = new CaptureRetention { Ttl = "8760h", Lock = "compliance", LegalHold = true };
        var elsewhere = Capture("r", "tcp", "30s");
        elsewhere.Spec.Retention = new CaptureRetention { Ttl = "24h", Lock = "compliance" };
        var governance = Capture("r", "tcp", "30s");
        governance.Metadata.NamespaceProperty = "forensics";
        governance.Spec.Retention = new CaptureRetention { Ttl = "24h", Lock = "governance" };

        Assert.True(policy.Check(inForensics).Allowed);
        Assert.Contains("not allow in namespace 'shop' (Policy:Locks allows governance nowhere; compliance in forensics, audit; legalHold in forensics)", policy.Check(elsewhere).Message, StringComparison.Ordinal);
        Assert.Equal("PolicyExceeded", policy.Check(governance).Reason);
    }

    [Fact]
    public void A_policy_whose_default_retention_or_required_lock_cannot_hold_fails_at_startup_naming_the_keys()
    {
        var tooLong = Assert.Throws<InvalidOperationException>(() => new CapturePolicy { MaxRetention = "24h" }.CheckDefaultRetention(TimeSpan.FromDays(7)));
        var impossible = Assert.Throws<InvalidOperationException>(() => new CapturePolicy { RequireLock = true, Locks = new LockPolicy { Governance = "" } }.Validate());

        Assert.Contains("Storage:DefaultRetention (7.00:00:00) is longer than Policy:MaxRetention (24h)", tooLong.Message, StringComparison.Ordinal);
        Assert.Contains("Policy:RequireLock is true, but Policy:Locks allows neither governance nor compliance anywhere", impossible.Message, StringComparison.Ordinal);
        new CapturePolicy().CheckDefaultRetention(TimeSpan.FromDays(7)); // the defaults agree
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
