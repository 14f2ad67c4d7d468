using k8s.Models;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Configuration;
using KubeCapture.Operator.Reconciliation;

namespace KubeCapture.Operator.Tests.Reconciliation;

/// <summary>spec.recorder as the operator checks it before any pod is touched: each bad input refused with a message naming the field.</summary>
public sealed class RecorderPolicyTests
{
    [Theory]
    [InlineData("", null, null, null, null, "InvalidSpec", "spec.recorder.window is required")]
    [InlineData("soon", null, null, null, null, "InvalidSpec", "spec.recorder.window: invalid duration 'soon'")]
    [InlineData("0s", null, null, null, null, "InvalidSpec", "spec.recorder.window 0s: it must be longer than zero")]
    [InlineData("20m", null, null, null, null, "InvalidSpec", "spec.recorder.window 20m is longer than spec.duration 10m: the recording would end before its ring held a window")]
    [InlineData("5m", "11m", null, null, null, "InvalidSpec", "spec.recorder.after 11m is longer than spec.duration 10m")]
    [InlineData("5m", null, "100", null, null, "InvalidSpec", "spec.recorder.maxBytes 100 cannot hold one packet at snaplen 128 (144 bytes with its record header): give at least 144 bytes, or a smaller spec.snaplen")]
    [InlineData("5m", null, "2Gi", null, null, "InvalidSpec", "spec.recorder.maxBytes 2Gi is too large for a ring held in the agent's memory: at most 1Gi")]
    [InlineData("5m", null, "512Mi", null, null, "PolicyExceeded", "spec.recorder.maxBytes 512Mi is more than the policy's maximum ring 256Mi (Policy:Recorder:MaxRingBytes)")]
    [InlineData("5m", null, null, 0, null, "InvalidSpec", "spec.recorder.maxSnapshots 0: use 1 to 100")]
    [InlineData("5m", null, null, 11, null, "PolicyExceeded", "spec.recorder.maxSnapshots 11 is more than the policy's maximum 10 (Policy:Recorder:MaxSnapshots)")]
    [InlineData("5m", null, null, null, "-1s", "InvalidSpec", "spec.recorder.cooldown: invalid duration '-1s'")]
    public void A_bad_recorder_is_refused_with_a_reason_and_a_message_naming_the_field(string window, string? after, string? ring, int? maxSnapshots, string? cooldown, string expectedReason, string expectedMessage)
    {
        var capture = Recording(new RecorderSpec { Window = window, After = after, MaxBytes = ring, MaxSnapshots = maxSnapshots, Cooldown = cooldown });

        var verdict = new CapturePolicy().Check(capture);

        Assert.Equal((expectedReason, false), (verdict.Reason, verdict.Allowed));
        Assert.Contains(expectedMessage, verdict.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_window_beyond_the_policys_maximum_is_PolicyExceeded()
    {
        var capture = Recording(new RecorderSpec { Window = "20m" });
        capture.Spec.Duration = "1h";

        var verdict = new CapturePolicy().Check(capture);

        Assert.Equal(("PolicyExceeded", "spec.recorder.window 20m is longer than the policy's maximum 15m (Policy:Recorder:MaxWindow)"), (verdict.Reason, verdict.Message));
        Assert.True(new CapturePolicy { Recorder = new RecorderPolicy { MaxWindow = "30m" } }.Check(capture).Allowed);
    }

    [Fact]
    public void Whole_packets_need_a_ring_of_at_least_one_262144_byte_record()
    {
        var capture = Recording(new RecorderSpec { Window = "1m", MaxBytes = "256Ki" });
        capture.Spec.Snaplen = 0;
        var policy = new CapturePolicy { MaxSnaplen = 262144 };

        var verdict = policy.Check(capture);
        capture.Spec.Recorder!.MaxBytes = "257Ki";

        Assert.Equal("spec.recorder.maxBytes 256Ki cannot hold one packet at snaplen 262144 (262160 bytes with its record header): give at least 262160 bytes, or a smaller spec.snaplen", verdict.Message);
        Assert.True(policy.Check(capture).Allowed);
    }

    [Theory]
    [InlineData("tcp[tcpflags] &", null, "InvalidFilter", "spec.recorder.triggers.filter.expression: invalid filter 'tcp[tcpflags] &'")]
    [InlineData("  ", null, "InvalidSpec", "spec.recorder.triggers.filter.expression is empty")]
    [InlineData("tcp", "20", "InvalidSpec", "invalid spec.recorder.triggers.filter.count '20': give a rate COUNT/PERIOD, e.g. 20/10s")]
    [InlineData("tcp", "0/10s", "InvalidSpec", "invalid spec.recorder.triggers.filter.count '0/10s': the count before '/' must be a whole number of at least 1")]
    [InlineData("tcp", "200000/1s", "InvalidSpec", "invalid spec.recorder.triggers.filter.count '200000/1s': at most 100000 matches")]
    public void A_trigger_filter_libpcap_rejects_or_a_bad_count_is_refused(string expression, string? count, string expectedReason, string expectedMessage)
    {
        var capture = Recording(new RecorderSpec { Window = "5m", Triggers = new RecorderTriggerSpec { Filter = new RecorderFilterTrigger { Expression = expression, Count = count } } });

        var verdict = new CapturePolicy().Check(capture);

        Assert.Equal(expectedReason, verdict.Reason);
        Assert.Contains(expectedMessage, verdict.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ResetFromMiddlebox", "spec.recorder.triggers.findings ResetFromMiddlebox: that finding comes from comparing both ends of a conversation, which one agent cannot see; the agent's own findings include ResetSuspectedForged")]
    [InlineData("LossOnOneLeg>2/1m", "spec.recorder.triggers.findings LossOnOneLeg: that finding comes from comparing both ends")]
    [InlineData("Refused", "spec.recorder.triggers.findings: unknown finding type 'Refused': use a severity (Error, Warning) or one of CaptureIncomplete")]
    [InlineData("ConnectionRefused>5", "invalid spec.recorder.triggers.findings 'ConnectionRefused>5': give a rate COUNT/PERIOD, e.g. 5/1m")]
    public void A_finding_trigger_one_agent_cannot_see_or_cannot_read_is_refused(string finding, string expectedMessage)
    {
        var capture = Recording(new RecorderSpec { Window = "5m", Triggers = new RecorderTriggerSpec { Findings = ["DataStalled", finding] } });

        var verdict = new CapturePolicy().Check(capture);

        Assert.Equal(("InvalidSpec", false), (verdict.Reason, verdict.Allowed));
        Assert.Contains(expectedMessage, verdict.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_valid_recording_is_accepted_for_the_whole_duration()
    {
        var capture = Recording(new RecorderSpec
        {
            Window = "5m",
            MaxBytes = "64Mi",
            After = "30s",
            MaxSnapshots = 3,
            Cooldown = "2m",
            Triggers = new RecorderTriggerSpec
            {
                Filter = new RecorderFilterTrigger { Expression = "tcp[tcpflags] & tcp-rst != 0", Count = "20/10s" },
                Findings = ["ConnectionRefused>5/1m", "DataStalled", "Error"],
            },
        });

        var verdict = new CapturePolicy().Check(capture);

        Assert.True(verdict.Allowed, verdict.Message);
        Assert.Equal(TimeSpan.FromMinutes(10), verdict.Duration);
    }

    [Theory]
    [InlineData("0s", "256Mi", 10, "Policy:Recorder:MaxWindow 0s: it must be longer than zero")]
    [InlineData("15m", "2Gi", 10, "Policy:Recorder:MaxRingBytes 2Gi: at most 1Gi")]
    [InlineData("15m", "lots", 10, "Policy:Recorder:MaxRingBytes lots: ")]
    [InlineData("15m", "256Mi", 101, "Policy:Recorder:MaxSnapshots 101: use 1 to 100")]
    public void A_malformed_recorder_policy_fails_at_startup_naming_the_key(string maxWindow, string maxRing, int maxSnapshots, string expected)
    {
        var policy = new CapturePolicy { Recorder = new RecorderPolicy { MaxWindow = maxWindow, MaxRingBytes = maxRing, MaxSnapshots = maxSnapshots } };

        var refused = Assert.Throws<OperatorConfigurationException>(policy.Validate);

        Assert.StartsWith(expected, refused.Message, StringComparison.Ordinal);
    }

    private static PacketCapture Recording(RecorderSpec recorder) => new()
    {
        Metadata = new V1ObjectMeta { Name = "rec", NamespaceProperty = "shop", Uid = "u" },
        Spec = new PacketCaptureSpec { Reason = "intermittent resets", Filter = "tcp port 5432", Duration = "10m", Target = new CaptureTarget { PodName = "db" }, Recorder = recorder },
    };
}
