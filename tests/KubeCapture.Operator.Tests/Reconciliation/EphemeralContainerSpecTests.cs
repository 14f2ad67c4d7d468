using k8s.Models;
using KubeCapture.Agent.Cli;
using KubeCapture.Agent.Recorder;
using KubeCapture.Contracts.Arguments;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Certificates;
using KubeCapture.Operator.Reconciliation;

namespace KubeCapture.Operator.Tests.Reconciliation;

/// <summary>The capture container's args toward a TLS ingest: the agent's own parser gets the operator's CA from them.</summary>
public sealed class EphemeralContainerSpecTests
{
    private static readonly PacketCapture Capture = new()
    {
        Metadata = new V1ObjectMeta { Name = "partner-timeouts", NamespaceProperty = "payments", Uid = "0b6f3c1e" },
        Spec = new PacketCaptureSpec { Reason = "r", Target = new CaptureTarget { PodName = "api-1" }, Duration = "30s", Filter = "tcp port 443" },
    };

    [Fact]
    public void AnHttpsIngestGivesTheAgentTheOperatorsCaAsOneArgumentItParsesBackToTheSameCertificate()
    {
        var authority = CertificateIssuer.IssueAuthority("kubecapture-operator-ca", TimeSpan.FromDays(1), DateTimeOffset.UtcNow);
        var container = EphemeralContainerSpec.Build(Capture, "api-1", "agent:1", "https://kc-ingest.ops.svc:8081", EphemeralContainerSpec.TokenFromSecret("token"), addNetRaw: true, authority.CertificatePem);

        var request = CommandLine.ParseCapture(container.Args.Skip(1).ToList(), DateTime.UtcNow, name => name == EphemeralContainerSpec.TokenVariable ? "token" : null);
        using var expected = authority.PublicCertificate();
        Assert.Equal(expected.Thumbprint, Assert.Single(request.Ingest!.Authority!).Thumbprint);
        Assert.Equal("tcp port 443", request.Options.Filter);
        Assert.DoesNotContain(container.Args, a => a.Contains("BEGIN", StringComparison.Ordinal)); // one base64 word, no line breaks
    }

    [Fact]
    public void APlainIngestGetsNoCaAndAnHttpsOneWithoutACaIsRefused()
    {
        var plain = EphemeralContainerSpec.Build(Capture, "api-1", "agent:1", "http://127.0.0.1:8081", EphemeralContainerSpec.TokenFromSecret("token"), addNetRaw: true);
        var error = Assert.Throws<ArgumentException>(() => EphemeralContainerSpec.Build(Capture, "api-1", "agent:1", "https://kc-ingest.ops.svc:8081", EphemeralContainerSpec.TokenFromSecret("token"), addNetRaw: true));

        Assert.DoesNotContain(EphemeralContainerSpec.IngestCaOption, plain.Args);
        Assert.Contains("the ingest https://kc-ingest.ops.svc:8081 serves TLS: the agent needs its CA", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_inject_spans_traceparent_reaches_the_agents_parser_from_the_containers_env_and_without_tracing_only_the_token_is_there()
    {
        const string TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        var traced = EphemeralContainerSpec.Build(Capture, "api-1", "agent:1", "http://127.0.0.1:8081", EphemeralContainerSpec.TokenFromSecret("token-secret"), addNetRaw: true, traceParent: TraceParent);
        var untraced = EphemeralContainerSpec.Build(Capture, "api-1", "agent:1", "http://127.0.0.1:8081", EphemeralContainerSpec.TokenFromSecret("token-secret"), addNetRaw: true);

        var env = traced.Env.ToDictionary(e => e.Name, e => e.Value ?? "the token, as the kubelet reads it from the Secret");
        var request = CommandLine.ParseCapture(traced.Args.Skip(1).ToList(), DateTime.UtcNow, name => env.GetValueOrDefault(name));
        Assert.Equal(TraceParent, request.Ingest!.TraceParent);
        Assert.Equal([EphemeralContainerSpec.TokenVariable], untraced.Env.Select(e => e.Name));
    }

    [Fact]
    public void The_upload_token_is_no_literal_in_the_spec_but_a_reference_to_the_targets_Secret()
    {
        var container = EphemeralContainerSpec.Build(Capture, "api-1", "agent:1", "http://127.0.0.1:8081", EphemeralContainerSpec.TokenFromSecret(UploadTokenSecret.NameFor("0b6f3c1e", "api-1")), addNetRaw: true);

        var token = Assert.Single(container.Env);
        Assert.Null(token.Value);
        Assert.Equal(("kubecapture-0b6f3c1e-api-1", UploadTokenSecret.Key, false), (token.ValueFrom.SecretKeyRef.Name, token.ValueFrom.SecretKeyRef.Key, token.ValueFrom.SecretKeyRef.Optional));
        Assert.DoesNotContain(k8s.KubernetesJson.Serialize(container), "stringData", StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("-1 = -1")]
    [InlineData("-ip[0] = 0")]
    [InlineData("--help")]
    [InlineData("-w /tmp/x tcp")]
    public void A_filter_that_starts_with_a_dash_reaches_the_agent_as_the_filter_never_as_an_option(string filter)
    {
        var capture = new PacketCapture { Metadata = Capture.Metadata, Spec = new PacketCaptureSpec { Reason = "r", Target = Capture.Spec.Target, Duration = "30s", Filter = filter } };
        var container = EphemeralContainerSpec.Build(capture, "api-1", "agent:1", "http://127.0.0.1:8081", EphemeralContainerSpec.TokenFromSecret("token-secret"), addNetRaw: true);

        var request = CommandLine.ParseCapture(container.Args.Skip(1).ToList(), DateTime.UtcNow, _ => "token");

        Assert.Equal(filter, request.Options.Filter);
        Assert.Equal("any", request.Options.Interface);
        Assert.Equal(["--", filter], container.Args.TakeLast(2));
    }

    [Fact]
    public void A_recording_is_the_agents_record_verb_with_the_ring_as_max_bytes_and_the_recorder_options_its_parser_reads_back()
    {
        var spec = new PacketCaptureSpec
        {
            Reason = "r",
            Target = Capture.Spec.Target,
            Duration = "1h",
            Filter = "tcp port 5432",
            MaxBytes = "1Gi",
            Recorder = new RecorderSpec
            {
                Window = "5m",
                MaxBytes = "32Mi",
                After = "30s",
                MaxSnapshots = 4,
                Cooldown = "2m",
                Triggers = new RecorderTriggerSpec
                {
                    Filter = new RecorderFilterTrigger { Expression = "tcp[tcpflags] & tcp-rst != 0", Count = "20/10s" },
                    Findings = ["ConnectionRefused>5/1m", "DataStalled"],
                },
            },
        };
        var container = EphemeralContainerSpec.Build(new PacketCapture { Metadata = Capture.Metadata, Spec = spec }, "api-1", "agent:1", "http://127.0.0.1:8081", EphemeralContainerSpec.TokenFromSecret("token"), addNetRaw: true);

        // The agent's record parser does not take the cluster options yet (snapshots through the
        // ingest are the operator's second half): what it reads of the rest must be the spec.
        var local = new List<string>();
        for (var i = 1; i < container.Args.Count; i++)
        {
            if (AgentCaptureCommand.ClusterOptions.Contains(container.Args[i]))
            {
                i++;
                continue;
            }

            local.Add(container.Args[i]);
        }

        var options = RecordCommandLine.Parse([.. local.Take(local.Count - 2), "--snapshot-dir", Path.GetTempPath(), .. local.TakeLast(2)]);

        Assert.Equal("record", container.Args[0]);
        Assert.Equal((32L << 20, "tcp port 5432", TimeSpan.FromHours(1)), (options.Capture.MaxBytes, options.Capture.Filter, options.Capture.Duration));
        Assert.Equal((TimeSpan.FromMinutes(5), TimeSpan.FromSeconds(30), 4, TimeSpan.FromMinutes(2)), (options.Window, options.After, options.MaxSnapshots, options.Cooldown));
        Assert.Equal("filter 'tcp[tcpflags] & tcp-rst != 0' matched 20 times within 10s", options.FilterTrigger!.ToString());
        Assert.Equal(["ConnectionRefused>5/1m", "DataStalled"], options.FindingTriggers.Select(f => f.ToString()));
    }
}
