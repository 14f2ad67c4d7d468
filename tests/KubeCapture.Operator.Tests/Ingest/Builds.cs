namespace KubeCapture.Operator.Tests.Ingest;

/// <summary>The built agent and operator of this repository, in the configuration the tests were built in.</summary>
public static class Builds
{
    public static string RepositoryRoot { get; } = FindRoot();

    /// <summary>Debug or Release: the tests' own build configuration.</summary>
    public static string Configuration { get; } = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name;

    public static string AgentDll => Built("capture-sidecar", "kubecapture-agent.dll");

    public static string OperatorDll => Built("operator", "kubecapture-operator.dll");

    private static string Built(string project, string dll)
    {
        var path = Path.Combine(RepositoryRoot, project, "bin", Configuration, "net10.0", dll);
        return File.Exists(path) ? path : throw new FileNotFoundException($"{path} is not built: run dotnet build KubeCapture.sln -c {Configuration}");
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
}
