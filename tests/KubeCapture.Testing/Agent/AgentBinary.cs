using System.Reflection;

namespace KubeCapture.Testing.Agent;

/// <summary>Finds the built <c>kubecapture-agent</c> executable.</summary>
public static class AgentBinary
{
    public const string FileName = "kubecapture-agent";

    /// <summary>
    /// capture-sidecar/bin/CONFIGURATION/net10.0/kubecapture-agent in the repository that holds the
    /// test assembly (the configuration the tests were built with), or the copy beside the test
    /// assembly when the test project references the agent.
    /// </summary>
    public static string Path { get; } = Locate();

    private static string Locate()
    {
        var configuration = typeof(AgentBinary).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(directory.FullName, "KubeCapture.sln")))
            {
                var built = System.IO.Path.Combine(directory.FullName, "capture-sidecar", "bin", configuration, "net10.0", FileName);
                if (File.Exists(built))
                {
                    return built;
                }

                break;
            }
        }

        var beside = System.IO.Path.Combine(AppContext.BaseDirectory, FileName);
        return File.Exists(beside)
            ? beside
            : throw new FileNotFoundException($"{FileName} is not built: run 'dotnet build KubeCapture.sln -c {configuration}'");
    }

    /// <summary>
    /// Copies the agent's build output to a fresh directory every user can read and run (for tests
    /// that run it as an unprivileged user; the repository may sit under a private home).
    /// </summary>
    public static string CopyForEveryone()
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("the agent runs on Linux");
        }

        var source = System.IO.Path.GetDirectoryName(Path)!;
        var target = Directory.CreateTempSubdirectory("kcAT-agent-").FullName;
        const UnixFileMode everyone = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
                                      UnixFileMode.GroupRead | UnixFileMode.GroupExecute |
                                      UnixFileMode.OtherRead | UnixFileMode.OtherExecute;
        File.SetUnixFileMode(target, everyone);
        foreach (var file in Directory.EnumerateFiles(source))
        {
            var copy = System.IO.Path.Combine(target, System.IO.Path.GetFileName(file));
            File.Copy(file, copy);
            File.SetUnixFileMode(copy, everyone);
        }

        return System.IO.Path.Combine(target, FileName);
    }
}
