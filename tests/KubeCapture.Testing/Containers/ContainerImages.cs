using System.Diagnostics;
using System.Text.RegularExpressions;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Testing.Containers;

/// <summary>
/// The images <c>bash scripts/images.sh</c> builds (kubecapture/agent:VERSION and
/// kubecapture/operator:VERSION, VERSION = appVersion of charts/kubecapture/Chart.yaml), and the
/// podman that holds them: its configuration and storage are those of the script, under the
/// repository's git-ignored .tools/containers/ (selected with CONTAINERS_CONF and
/// CONTAINERS_STORAGE_CONF; the machine's own podman configuration is not used).
/// </summary>
public static partial class ContainerImages
{
    private static readonly Lazy<string?> MissingReason = new(FindMissing);

    public static string RepositoryRoot { get; } = FindRoot();

    /// <summary>appVersion of charts/kubecapture/Chart.yaml: the tag of both images.</summary>
    public static string Version { get; } = ReadVersion();

    public static string Agent => $"kubecapture/agent:{Version}";

    public static string Operator => $"kubecapture/operator:{Version}";

    /// <summary>.tools/containers/ of the repository: podman's configuration, storage and state.</summary>
    public static string StateDirectory => Path.Combine(RepositoryRoot, ".tools", "containers");

    /// <summary>The environment podman needs to see these images.</summary>
    public static IReadOnlyDictionary<string, string> PodmanEnvironment => new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["CONTAINERS_CONF"] = Path.Combine(StateDirectory, "containers.conf"),
        ["CONTAINERS_STORAGE_CONF"] = Path.Combine(StateDirectory, "storage.conf"),
    };

    /// <summary>True under CI=true: missing images fail the tests that need them instead of skipping them.</summary>
    public static bool RequiredByCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>Null when podman and both images are here; else one line saying what is missing and how to build it.</summary>
    public static string? Missing => MissingReason.Value;

    /// <summary>
    /// Why a test that needs the images is skipped: null when they are here, and null under CI=true
    /// (the test then runs and fails in <see cref="Require"/>).
    /// </summary>
    public static string? SkipReason => RequiredByCi ? null : Missing;

    /// <summary>Throws with the one-line reason when podman or the images are missing.</summary>
    public static void Require()
    {
        if (Missing is { } reason)
        {
            throw new InvalidOperationException(RequiredByCi ? $"{reason} (CI=true: the images are required)" : reason);
        }
    }

    /// <summary>
    /// For fixtures of [SkippableFact] tests: skips the test with the one-line reason when podman or
    /// the images are missing; under CI=true it fails instead.
    /// </summary>
    public static void RequireOrSkip()
    {
        if (Missing is { } reason)
        {
            if (RequiredByCi)
            {
                Require();
            }

            throw new Xunit.SkipException(reason);
        }
    }

    /// <summary>A podman command with this repository's configuration and storage.</summary>
    public static ProcessStartInfo Podman(IEnumerable<string> arguments)
    {
        var info = new ProcessStartInfo("podman")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var (name, value) in PodmanEnvironment)
        {
            info.Environment[name] = value;
        }

        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        return info;
    }

    /// <summary>Runs podman (this repository's storage) and collects its output.</summary>
    public static Task<CommandResult> PodmanAsync(IEnumerable<string> arguments, TimeSpan? timeout = null) =>
        HostCommand.RunAsync(Podman(arguments), timeout);

    public static Task<CommandResult> PodmanAsync(params string[] arguments) => PodmanAsync(arguments, null);

    private static string? FindMissing()
    {
        const string build = "run 'bash scripts/images.sh' (as root) to build them";
        if (!OperatingSystem.IsLinux() || !HostCommand.IsRoot)
        {
            return $"the container tests need Linux and root; {build}";
        }

        if (!File.Exists(PodmanEnvironment["CONTAINERS_CONF"]))
        {
            return $"podman and the images kubecapture/agent:{Version} and kubecapture/operator:{Version} are not set up (no {PodmanEnvironment["CONTAINERS_CONF"]}): {build}";
        }

        var missing = new List<string>();
        foreach (var image in new[] { Agent, Operator })
        {
            try
            {
                if (PodmanAsync(["image", "exists", image], TimeSpan.FromSeconds(30)).GetAwaiter().GetResult().ExitCode != 0)
                {
                    missing.Add(image);
                }
            }
            catch (System.ComponentModel.Win32Exception)
            {
                return $"podman is not installed: {build}";
            }
        }

        return missing.Count == 0 ? null : $"the image(s) {string.Join(", ", missing)} are not built: {build}";
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "KubeCapture.sln")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException("KubeCapture.sln not found above " + AppContext.BaseDirectory);
    }

    private static string ReadVersion()
    {
        var chart = File.ReadAllText(Path.Combine(RepositoryRoot, "charts", "kubecapture", "Chart.yaml"));
        var match = AppVersion().Match(chart);
        return match.Success ? match.Groups[1].Value : throw new InvalidDataException("no appVersion in charts/kubecapture/Chart.yaml");
    }

    [GeneratedRegex("""^appVersion:\s*"?([^"\s]+)"?\s*$""", RegexOptions.Multiline)]
    private static partial Regex AppVersion();
}
