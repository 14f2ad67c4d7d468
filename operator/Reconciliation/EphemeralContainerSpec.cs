using k8s.Models;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Arguments;
using KubeCapture.Contracts.Capture;
using KubeCapture.Contracts.Resources;

namespace KubeCapture.Operator.Reconciliation;

/// <summary>
/// The capture container added to a target pod: the agent in cluster mode with everything it needs
/// in its args and env (so any runtime, or a test kubelet, can start it), adding exactly NET_RAW and
/// dropping ALL else; where Pod Security (baseline) forbids adding it, adding nothing and dropping
/// every runtime default except NET_RAW; never privilege escalation, volumes or ports.
/// </summary>
public static class EphemeralContainerSpec
{
    public const string NamePrefix = "kubecapture-";

    /// <summary>
    /// The default capabilities of containerd and CRI-O, except NET_RAW. Where Pod Security
    /// (baseline) forbids adding NET_RAW, the container drops these instead of ALL: it keeps only
    /// the runtime's default NET_RAW (dropping ALL would take that away too).
    /// </summary>
    public static readonly IReadOnlyList<string> RuntimeDefaultsExceptNetRaw =
    [
        "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
    ];
    public const string TokenVariable = AgentCaptureCommand.TokenVariable;

    /// <summary>The agent's option carrying the CA (PEM, in base64) it verifies a TLS ingest against.</summary>
    public const string IngestCaOption = AgentCaptureCommand.IngestCaOption;

    /// <summary>KUBECAPTURE_TOKEN read by the kubelet from the target's Secret (<see cref="TokenDelivery.Secret"/>).</summary>
    public static V1EnvVar TokenFromSecret(string secretName) => new()
    {
        Name = TokenVariable,
        ValueFrom = new V1EnvVarSource { SecretKeyRef = new V1SecretKeySelector { Name = secretName, Key = UploadTokenSecret.Key, Optional = false } },
    };

    /// <summary>KUBECAPTURE_TOKEN as a literal in the container spec (<see cref="TokenDelivery.PodSpec"/>).</summary>
    public static V1EnvVar TokenInSpec(string token) => new() { Name = TokenVariable, Value = token };

    /// <summary>Whether agents reach the ingest over TLS (an https:// URL).</summary>
    public static bool IsTls(string ingestUrl) => AgentCaptureCommand.IsTls(ingestUrl);

    /// <summary>Deterministic from the capture UID: a retry or an operator restart finds it instead of adding another.</summary>
    public static string ContainerName(string captureUid) => NamePrefix + captureUid;

    /// <summary>The capture UID a capture container belongs to, or null for other containers.</summary>
    public static string? CaptureUidOf(string containerName) =>
        containerName.StartsWith(NamePrefix, StringComparison.Ordinal) ? containerName[NamePrefix.Length..] : null;

    /// <summary>
    /// The agent's cluster mode: <c>capture --ingest URL --capture-uid U --capture-namespace NS
    /// --capture-name N --pod P -i IFACE -s SNAPLEN [-c COUNT] --duration D --max-bytes SIZE
    /// --retention TTL [-- FILTER]</c>: the filter after <c>--</c>, so a filter that starts with '-'
    /// (<c>-1 = -1</c>) is never taken for an option. The token is in KUBECAPTURE_TOKEN, never on the
    /// command line: <paramref name="token"/> is <see cref="TokenFromSecret"/> (the kubelet reads it from
    /// the target's <see cref="UploadTokenSecret"/>) or, where the cluster's kubelet may not read that
    /// Secret (<see cref="TokenDelivery.PodSpec"/>), <see cref="TokenInSpec"/>.
    /// An https:// ingest adds <c>--ingest-ca-pem BASE64</c>: the CA bundle (PEM, base64-encoded so
    /// it is one word) the agent verifies the ingest's certificate against (ephemeral containers
    /// cannot mount volumes; a CA certificate is public).
    /// With tracing on, <paramref name="traceParent"/> (the inject span's W3C context) goes in
    /// TRACEPARENT: the agent sends it with its ingest stream, which continues the trace.
    /// </summary>
    public static V1EphemeralContainer Build(PacketCapture capture, string pod, string image, string ingestUrl, V1EnvVar token, bool addNetRaw, string? ingestCaPem = null, string? traceParent = null)
    {
        var spec = capture.Spec;
        var args = new AgentCaptureCommand
        {
            IngestUrl = ingestUrl,
            IngestCaPem = ingestCaPem,
            Target = new CaptureIdentity(capture.Metadata.Uid, capture.Metadata.NamespaceProperty, capture.Metadata.Name, pod),
            Interface = spec.Interface ?? "any",
            Snaplen = spec.Snaplen ?? CaptureOptions.DefaultSnaplen,
            MaxPackets = spec.MaxPackets,
            Duration = spec.Duration,
            // A recording's --max-bytes is its ring.
            MaxBytes = spec.Recorder?.RingBytes ?? spec.MaxBytes ?? PacketCaptureSpec.DefaultMaxBytes,
            Retention = spec.Retention?.Ttl ?? AgentCaptureCommand.DefaultRetention,
            Filter = spec.Filter ?? "",
            Recorder = spec.Recorder is { } recorder ? RecorderPolicy.Arguments(recorder) : null,
        }.ToArgs().ToList();

        if (token.Name != TokenVariable)
        {
            throw new ArgumentException($"the token goes in {TokenVariable}, not {token.Name}", nameof(token));
        }

        return new V1EphemeralContainer
        {
            Name = ContainerName(capture.Metadata.Uid),
            Image = image,
            ImagePullPolicy = "IfNotPresent",
            Args = args,
            Env = traceParent is { Length: > 0 }
                ? [token, new V1EnvVar { Name = Tracing.CaptureTracing.ParentVariable, Value = traceParent }]
                : [token],
            Stdin = false,
            Tty = false,
            TerminationMessagePolicy = "FallbackToLogsOnError",
            SecurityContext = new V1SecurityContext
            {
                AllowPrivilegeEscalation = false,
                Privileged = false,
                ReadOnlyRootFilesystem = true,
                RunAsNonRoot = null,
                Capabilities = addNetRaw
                    ? new V1Capabilities { Add = ["NET_RAW"], Drop = ["ALL"] }
                    : new V1Capabilities { Drop = [.. RuntimeDefaultsExceptNetRaw] },
            },
        };
    }
}
