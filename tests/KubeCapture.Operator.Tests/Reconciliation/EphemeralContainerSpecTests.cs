using k8s.Models;
using KubeCapture.Agent.Cli;
using KubeCapture.Operator.Certificates;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Resources;

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
}
