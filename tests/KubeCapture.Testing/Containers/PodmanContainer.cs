using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using k8s.Models;

namespace KubeCapture.Testing.Containers;

/// <summary>
/// Runs a container the way a kubelet (containerd/CRI-O) runs an ephemeral container: the
/// <c>podman run</c> for a <see cref="V1EphemeralContainer"/>, in a pod's network namespace (one
/// made with <c>ip netns add</c>), with its command, args, env and securityContext mapped.
/// </summary>
/// <remarks>
/// Mapping (Kubernetes → podman):
/// <list type="bullet">
/// <item>image → the local image (<c>--pull=never</c>: an image that is not here fails with exit 125 and "image not known", the kubelet's ErrImagePull).</item>
/// <item>command → <c>--entrypoint</c> (the image's ENTRYPOINT and CMD are ignored); args → after the image (they replace the image's CMD and follow its ENTRYPOINT or the command).</item>
/// <item>env name/value → <c>--env NAME</c> with the value in podman's environment (never on a command line; valueFrom/envFrom are not supported). workingDir → <c>--workdir</c>.</item>
/// <item>capabilities drop/add → <c>--cap-drop</c>/<c>--cap-add</c> (drop ALL first, then add: the same order as containerd); without drops the container starts from containerd's default set (scripts/images.sh puts it in containers.conf).</item>
/// <item>
/// Ambient capabilities: for a non-root user podman also puts the added capabilities into the
/// ambient and inheritable sets, so any program of the container would hold them; containerd
/// and CRI-O never set ambient (nor, since CVE-2022-24769, inheritable) capabilities: a non-root
/// process keeps an added capability only through a file capability on its executable. The
/// container therefore runs with <c>--runtime</c> <see cref="KubeletRuntime"/>, a wrapper around
/// runc that empties <c>process.capabilities.ambient</c> and <c>inheritable</c> in the bundle's
/// config.json before runc creates the container. Bounding, permitted and effective sets are
/// podman's (as containerd's).
/// </item>
/// <item>runAsUser/runAsGroup (container, else pod) → <c>--user UID[:GID]</c>; runAsNonRoot → refused (<see cref="ContainerConfigException"/>, the kubelet's CreateContainerConfigError) when the user would be root or is not numeric.</item>
/// <item>readOnlyRootFilesystem → <c>--read-only --read-only-tmpfs=false</c> (no writable /tmp, /run: a kubelet mounts none).</item>
/// <item>allowPrivilegeEscalation=false → <c>--security-opt no-new-privileges</c>; privileged → <c>--privileged</c>.</item>
/// <item>seccompProfile RuntimeDefault → podman's default profile; unset or Unconfined → <c>seccomp=unconfined</c> (Kubernetes' default without SeccompDefault).</item>
/// <item>stdin → <c>--interactive</c>. volumeMounts are refused: pass test-only bind mounts in <c>extraPodmanArgs</c>.</item>
/// </list>
/// Stop it as a kubelet does: SIGTERM to the podman process (it proxies the signal to the
/// container), SIGKILL after a grace period; give the container a <c>--name</c> in
/// <c>extraPodmanArgs</c> to <c>podman rm -f</c> it if the podman process itself dies.
/// </remarks>
public static class PodmanContainer
{
    /// <summary>containerd's and CRI-O's ulimits are the host's; podman's default nofile cannot be set on these machines.</summary>
    public static readonly IReadOnlyList<string> Ulimits = ["nofile=20000:20000", "nproc=32768:32768"];

    private static readonly Lazy<string> Runtime = new(WriteKubeletRuntime);

    /// <summary>The runc wrapper that runs containers without ambient or inheritable capabilities (written into .tools/containers/ on first use).</summary>
    public static string KubeletRuntime => Runtime.Value;

    /// <summary>
    /// The <c>podman run</c> for <paramref name="container"/> in the network namespace
    /// /run/netns/<paramref name="netnsName"/> (null: <c>--network none</c>).
    /// <paramref name="extraPodmanArgs"/> go before the image (test-only bind mounts, <c>--name</c>).
    /// <paramref name="pod"/> supplies runAsUser, runAsGroup, runAsNonRoot and supplementalGroups where the container sets none.
    /// Output and error are redirected; start it with <see cref="Process.Start(ProcessStartInfo)"/>.
    /// </summary>
    public static ProcessStartInfo Command(V1EphemeralContainer container, string? netnsName, IReadOnlyList<string>? extraPodmanArgs = null, V1PodSecurityContext? pod = null)
    {
        ArgumentNullException.ThrowIfNull(container);
        if (string.IsNullOrEmpty(container.Image))
        {
            throw new ContainerConfigException($"container {container.Name} has no image");
        }

        if (container.VolumeMounts is { Count: > 0 } || container.VolumeDevices is { Count: > 0 })
        {
            throw new NotSupportedException("volumeMounts/volumeDevices are not mapped; pass bind mounts in extraPodmanArgs");
        }

        if (container.EnvFrom is { Count: > 0 } || container.Env?.Any(e => e.ValueFrom is not null) == true)
        {
            throw new NotSupportedException("env valueFrom and envFrom are not mapped; give the values");
        }

        var args = new List<string>
        {
            "run", "--rm", "--pull=never", "--runtime", KubeletRuntime,
        };
        foreach (var limit in Ulimits)
        {
            args.AddRange(["--ulimit", limit]);
        }

        args.AddRange(["--network", netnsName is null ? "none" : $"ns:/run/netns/{netnsName}"]);
        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var env in container.Env ?? [])
        {
            // --env NAME takes the value from podman's own environment: the value never appears on a command line.
            args.AddRange(["--env", env.Name]);
            environment[env.Name] = env.Value ?? "";
        }

        if (!string.IsNullOrEmpty(container.WorkingDir))
        {
            args.AddRange(["--workdir", container.WorkingDir]);
        }

        if (container.Stdin == true)
        {
            args.Add("--interactive");
        }

        AddSecurity(args, container, pod);
        if (container.Command is { Count: > 0 } command)
        {
            args.AddRange(["--entrypoint", JsonSerializer.Serialize(command)]);
        }

        args.AddRange(extraPodmanArgs ?? []);
        args.Add(container.Image);
        args.AddRange(container.Args ?? []);

        var info = ContainerImages.Podman(args);
        info.RedirectStandardInput = container.Stdin == true;
        foreach (var (name, value) in environment)
        {
            info.Environment[name] = value;
        }

        return info;
    }

    private static void AddSecurity(List<string> args, V1EphemeralContainer container, V1PodSecurityContext? pod)
    {
        var security = container.SecurityContext;
        foreach (var drop in security?.Capabilities?.Drop ?? [])
        {
            args.Add($"--cap-drop={Capability(drop)}");
        }

        foreach (var add in security?.Capabilities?.Add ?? [])
        {
            args.Add($"--cap-add={Capability(add)}");
        }

        var user = security?.RunAsUser ?? pod?.RunAsUser;
        var group = security?.RunAsGroup ?? pod?.RunAsGroup;
        if (security?.RunAsNonRoot ?? pod?.RunAsNonRoot ?? false)
        {
            var effective = user?.ToString(CultureInfo.InvariantCulture) ?? ImageUser(container.Image);
            if (!long.TryParse(effective.Split(':')[0], NumberStyles.None, CultureInfo.InvariantCulture, out var uid))
            {
                throw new ContainerConfigException($"container has runAsNonRoot and image has non-numeric user ({effective}), cannot verify user is non-root");
            }

            if (uid == 0)
            {
                throw new ContainerConfigException("container has runAsNonRoot and image will run as root");
            }
        }

        if (user is not null)
        {
            args.AddRange(["--user", group is null ? $"{user}" : $"{user}:{group}"]);
        }
        else if (group is not null)
        {
            var imageUser = ImageUser(container.Image).Split(':')[0];
            args.AddRange(["--user", $"{(imageUser.Length == 0 ? "0" : imageUser)}:{group}"]);
        }

        foreach (var supplemental in pod?.SupplementalGroups ?? [])
        {
            args.AddRange(["--group-add", Convert.ToString(supplemental, CultureInfo.InvariantCulture)!]);
        }

        if (security?.ReadOnlyRootFilesystem == true)
        {
            args.AddRange(["--read-only", "--read-only-tmpfs=false"]);
        }

        if (security?.AllowPrivilegeEscalation == false)
        {
            args.AddRange(["--security-opt", "no-new-privileges"]);
        }

        if (security?.Privileged == true)
        {
            args.Add("--privileged");
        }

        var seccomp = security?.SeccompProfile ?? pod?.SeccompProfile;
        switch (seccomp?.Type)
        {
            case "RuntimeDefault":
                break;
            case null or "Unconfined":
                args.AddRange(["--security-opt", "seccomp=unconfined"]);
                break;
            default:
                throw new NotSupportedException($"seccompProfile {seccomp.Type} is not mapped");
        }
    }

    /// <summary>Kubernetes names capabilities without the CAP_ prefix; podman takes both.</summary>
    private static string Capability(string name) =>
        name.StartsWith("CAP_", StringComparison.OrdinalIgnoreCase) ? name.ToUpperInvariant() : name.ToUpperInvariant() == "ALL" ? "ALL" : "CAP_" + name.ToUpperInvariant();

    private static string ImageUser(string image)
    {
        var inspect = ContainerImages.PodmanAsync(["image", "inspect", "--format", "{{.Config.User}}", image], TimeSpan.FromSeconds(30)).GetAwaiter().GetResult();
        return inspect.ExitCode == 0 ? inspect.Stdout.Trim() : throw new ContainerConfigException($"image {image} is not here: {inspect.Stderr.Trim()}");
    }

    private static string WriteKubeletRuntime()
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("containers run on Linux");
        }

        Directory.CreateDirectory(ContainerImages.StateDirectory);
        var path = Path.Combine(ContainerImages.StateDirectory, "kubelet-runc");
        var temporary = $"{path}.{Environment.ProcessId}.tmp";
        File.WriteAllText(temporary, KubeletRuntimeScript);
        File.SetUnixFileMode(temporary, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        File.Move(temporary, path, overwrite: true);
        return path;
    }

    private const string KubeletRuntimeScript = """
        #!/usr/bin/python3
        # Written by KubeCapture.Testing (PodmanContainer). runc as containerd and CRI-O run it for a
        # kubelet: podman puts the capabilities it adds into the ambient and inheritable sets for a
        # non-root user; Kubernetes runtimes set neither. Empty both in the bundle's config.json,
        # then run the real runc with the same arguments.
        import json, os, shutil, sys

        args = sys.argv[1:]
        with_value = {"--root", "--log", "--log-format", "--criu"}
        command, i = None, 0
        while i < len(args):
            if args[i] in with_value:
                i += 2
                continue
            if not args[i].startswith("-"):
                command = args[i]
                break
            i += 1
        if command in ("create", "run"):
            bundle = os.getcwd()
            rest = args[i + 1:]
            for j, a in enumerate(rest):
                if a in ("--bundle", "-b") and j + 1 < len(rest):
                    bundle = rest[j + 1]
                elif a.startswith("--bundle="):
                    bundle = a.split("=", 1)[1]
            path = os.path.join(bundle, "config.json")
            with open(path) as f:
                config = json.load(f)
            capabilities = config.get("process", {}).get("capabilities")
            if capabilities is not None:
                capabilities["ambient"] = []
                capabilities["inheritable"] = []
                with open(path + ".kubelet", "w") as f:
                    json.dump(config, f)
                os.replace(path + ".kubelet", path)
        runc = shutil.which("runc", path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        os.execv(runc, ["runc"] + args)

        """;
}

/// <summary>The container cannot be created as specified (the kubelet's CreateContainerConfigError).</summary>
public sealed class ContainerConfigException(string message) : Exception(message);
