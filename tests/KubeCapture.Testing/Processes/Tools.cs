namespace KubeCapture.Testing.Processes;

/// <summary>The repository the tests were built from, and the tools scripts/setup.sh installs into its git-ignored .tools/.</summary>
public static class Tools
{
    public static string RepositoryRoot { get; } = FindRoot();

    public static string Kubectl => Installed(Path.Combine(RepositoryRoot, ".tools", "bin", "kubectl"));

    public static string Helm => Installed(Path.Combine(RepositoryRoot, ".tools", "bin", "helm"));

    public static string Chart => Path.Combine(RepositoryRoot, "charts", "kubecapture");

    private static string Installed(string path) =>
        File.Exists(path) ? path : throw new FileNotFoundException($"{path} is missing: scripts/setup.sh installs it");

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
