using k8s;
using k8s.Models;
using KubeCapture.Testing.Containers;
using KubeCapture.Testing.Netns;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Operator.Tests.Images;

/// <summary>
/// The operator image (bash scripts/images.sh) started with the chart's securityContext (non-root,
/// read-only root filesystem, no capabilities, no privilege escalation, RuntimeDefault seccomp), the
/// ingest alone (no Kubernetes API), in a pod's network namespace: its health endpoints answer.
/// </summary>
public sealed class OperatorImageTests : IAsyncLifetime
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private readonly string _name = $"kcim-operator-{Environment.ProcessId}-{Guid.NewGuid():N}"[..40];
    private NetnsLab? _lab;

    private NetnsLab Lab => _lab ?? throw new InvalidOperationException("not initialized");

    public async Task InitializeAsync()
    {
        if (ContainerImages.SkipReason is not null)
        {
            return;
        }

        ContainerImages.Require();
        _lab = await NetnsLab.CreateAsync("kcIO");
    }

    public async Task DisposeAsync()
    {
        if (_lab is not null)
        {
            await _lab.DisposeAsync();
        }
    }

    [ImagesFact]
    public async Task The_operator_image_starts_and_answers_healthz_and_readyz()
    {
        // Storage on a tmpfs, as an emptyDir volume would give it; the ingest's TLS certificate mounted as a Secret would be.
        var tls = KubeCapture.Operator.Tests.Ingest.IngestCertificateFiles.Issue(Lab.Server.IPv4.ToString());
        (await HostCommand.RunAsync("chmod", "-R", "a+rX", Path.GetDirectoryName(tls.CertificateFile)!)).EnsureSuccess(); // the operator runs as 65532
        var container = Operator("--Storage:LocalPath=/data", "--ServingCertificate:Mode=Mounted", "--ServingCertificate:CertificateFile=/tls/tls.crt",
            "--ServingCertificate:KeyFile=/tls/tls.key", "--ServingCertificate:CaFile=/tls/ca.crt");
        await using var running = ContainerProcess.Start(PodmanContainer.Command(container, Lab.Server.Name,
            ["--mount", "type=tmpfs,destination=/data,tmpfs-mode=1777", "--volume", $"{Path.GetDirectoryName(tls.CertificateFile)}:/tls:ro"]), _name);

        Assert.Equal("200 Healthy", await GetWhenListeningAsync(running, "/healthz"));
        Assert.Equal("200", (await GetAsync("/readyz")).Split(' ')[0]);
        Assert.Equal("200", (await Lab.Client.ExecAsync("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", $"http://{Lab.Server.IPv4}:8080/healthz")).Stdout);
        // The ingest answers HTTP/2 over TLS with the mounted certificate, verified against its CA (gRPC's 415 to a request that is not gRPC).
        var ingest = await Lab.Client.ExecAsync("curl", "-sS", "--http2", "--cacert", tls.AuthorityFile, "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
            "-X", "POST", $"https://{Lab.Server.IPv4}:8081/kubecapture.v1.Ingest/Upload");
        Assert.True(ingest.ExitCode == 0, ingest.Stderr);
        Assert.Equal("2 415", ingest.Stdout);
        var exit = await running.StopAsync(Patience);
        Assert.True(exit.ExitCode == 0, $"exit {exit.ExitCode}: {exit.Stderr}");
    }

    [ImagesFact]
    public async Task The_operator_image_is_not_ready_when_its_local_store_is_not_writable()
    {
        // The read-only root filesystem and no volume for the store: alive, but not ready.
        var container = Operator("--Storage:LocalPath=/var/lib/kubecapture");
        await using var running = ContainerProcess.Start(PodmanContainer.Command(container, Lab.Server.Name), _name);

        Assert.Equal("200 Healthy", await GetWhenListeningAsync(running, "/healthz"));
        Assert.Equal("503", (await GetAsync("/readyz")).Split(' ')[0]);
    }

    [ImagesFact]
    public async Task The_operator_as_the_chart_deploys_it_without_S3_is_ready_with_its_captures_on_the_charts_volume()
    {
        // The chart's Deployment as helm renders it: container securityContext, env, and the pod's securityContext.
        var rendered = (await HostCommand.RunAsync(Tools.Helm, ["template", "kc", Tools.Chart, "--set", "storage.local.emptyDir=true"], Patience)).EnsureSuccess().Stdout;
        var pod = Assert.Single(KubernetesYaml.LoadAllFromString(rendered).OfType<V1Deployment>()).Spec.Template.Spec;
        var deployed = Assert.Single(pod.Containers);
        var container = new V1EphemeralContainer
        {
            Name = deployed.Name,
            Image = ContainerImages.Operator,
            // No Kubernetes API here: the ingest alone, without what needs the API (the extension API, the
            // admission webhooks and their serving certificate in a Secret, the upload token key in a Secret:
            // a fixed key instead). Env from fieldRefs (POD_NAME...) cannot be mapped and is not needed by it.
            // No serving certificate without the API, so the ingest is plain h2c here (Ingest:Tls=false, an http:// endpoint).
            Args = ["--Reconciler:Enabled=false", "--LeaderElection:Enabled=false", "--Subresources:Enabled=false", "--Admission:Enabled=false", "--Ingest:TokenSecret=image-test",
                "--Ingest:Tls=false", "--Kestrel:Endpoints:Ingest:Url=http://0.0.0.0:8081"],
            Env = [.. deployed.Env.Where(e => e.ValueFrom is null && !e.Name.StartsWith("ServingCertificate__", StringComparison.Ordinal) && !e.Name.StartsWith("Subresources__", StringComparison.Ordinal)
                && !e.Name.StartsWith("Admission__", StringComparison.Ordinal)
                && e.Name is not ("Ingest__Tls" or "Kestrel__Endpoints__Ingest__Url" or "Ingest__TokenKeySecret"))],
            SecurityContext = deployed.SecurityContext,
        };
        // emptyDir volumes as a kubelet gives them: an empty directory writable by the pod.
        var emptyDirs = pod.Volumes.Where(v => v.EmptyDir is not null).Select(v => v.Name).ToHashSet();
        var mounts = deployed.VolumeMounts.Where(m => emptyDirs.Contains(m.Name)).SelectMany(m => new[] { "--mount", $"type=tmpfs,destination={m.MountPath},tmpfs-mode=1777" });
        Assert.Contains(deployed.VolumeMounts, m => m.MountPath == "/var/lib/kubecapture");
        await using var running = ContainerProcess.Start(PodmanContainer.Command(container, Lab.Server.Name, [.. mounts], pod.SecurityContext), _name);

        Assert.Equal("200 Healthy", await GetWhenListeningAsync(running, "/healthz"));
        Assert.Equal("200", (await GetAsync("/readyz")).Split(' ')[0]);
    }

    private static V1EphemeralContainer Operator(params string[] args) => new()
    {
        Name = "operator",
        Image = ContainerImages.Operator,
        // The ingest is plain h2c unless the test mounts a certificate (args give Ingest:Tls and the endpoint otherwise).
        Args = ["--Reconciler:Enabled=false", "--Ingest:TokenSecret=image-test",
            .. args.Any(a => a.StartsWith("--ServingCertificate:", StringComparison.Ordinal)) ? Array.Empty<string>() : ["--Ingest:Tls=false", "--Kestrel:Endpoints:Ingest:Url=http://0.0.0.0:8081"],
            .. args],
        SecurityContext = new V1SecurityContext
        {
            AllowPrivilegeEscalation = false,
            ReadOnlyRootFilesystem = true,
            RunAsNonRoot = true,
            Capabilities = new V1Capabilities { Drop = ["ALL"] },
            SeccompProfile = new V1SeccompProfile { Type = "RuntimeDefault" },
        },
    };

    /// <summary>"CODE BODY" of a GET from inside the pod's network namespace, or null when nothing answers.</summary>
    private async Task<string?> TryGetAsync(string path)
    {
        var result = await Lab.Server.ExecAsync("curl", "-sS", "--max-time", "10", "-w", " %{http_code}", $"http://127.0.0.1:8080{path}");
        if (result.ExitCode != 0)
        {
            return null;
        }

        var text = result.Stdout.Trim();
        var space = text.LastIndexOf(' ');
        return $"{text[(space + 1)..]} {text[..Math.Max(space, 0)]}".Trim();
    }

    private async Task<string> GetAsync(string path) => await TryGetAsync(path) ?? throw new InvalidOperationException($"nothing answers {path}");

    /// <summary>Polls until the operator answers (it takes a moment to start); throws with its stderr when it exits or the time is up.</summary>
    private async Task<string> GetWhenListeningAsync(ContainerProcess running, string path)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (true)
        {
            if (await TryGetAsync(path) is { } answer)
            {
                return answer;
            }

            if (running.HasExited || DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException($"the operator did not answer {path} (exited: {running.HasExited}): {running.Stderr}");
            }

            await Task.Delay(200);
        }
    }
}
