using System.Xml.Linq;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Operator.Tests.Architecture;

/// <summary>
/// The projects' graph as the solution declares it: what the agent, the operator and the plugin share
/// is in libraries (contracts/), never reached through another program. A test project may reference
/// the programs it runs (that is how xunit tests an executable), a benchmark the program it measures.
/// </summary>
public sealed class ProjectGraphTests
{
    private static readonly string[] ProgramFolders = ["capture-sidecar", "operator", "kubectl-capture", "proto", "contracts"];

    [Fact]
    public void No_program_or_library_references_an_executable_project()
    {
        var offending = SolutionProjects()
            .Where(p => ProgramFolders.Contains(TopFolder(p)))
            .SelectMany(p => References(p).Where(IsExecutable).Select(r => $"{Relative(p)} -> {Relative(r)}"))
            .ToList();

        Assert.True(SolutionProjects().Count(p => ProgramFolders.Contains(TopFolder(p))) >= 7, "the solution lists the programs and the contract libraries");
        Assert.Empty(offending);
    }

    [Fact]
    public void No_project_compiles_another_projects_sources_or_switches_off_the_executable_reference_check()
    {
        var offending = SolutionProjects()
            .Where(p => Project(p).Descendants().Any(e =>
                (e.Name.LocalName == "Compile" && e.Attribute("Link") is not null) ||
                e.Name.LocalName == "ValidateExecutableReferencesMatchSelfContained"))
            .Select(Relative)
            .ToList();

        Assert.Empty(offending);
    }

    [Fact]
    public void The_agent_references_no_kubernetes_client_directly_or_through_a_library()
    {
        var agent = SolutionProjects().Single(p => Path.GetFileName(p) == "KubeCapture.Agent.csproj");
        var reached = new HashSet<string>();
        var next = new Stack<string>([agent]);
        while (next.TryPop(out var project))
        {
            if (reached.Add(project))
            {
                foreach (var reference in References(project))
                {
                    next.Push(reference);
                }
            }
        }

        var withClient = reached.Where(p => Project(p).Descendants().Any(e => e.Name.LocalName == "PackageReference" && ((string?)e.Attribute("Include"))?.StartsWith("KubernetesClient", StringComparison.Ordinal) == true)).Select(Relative).ToList();
        Assert.Contains(reached, p => Path.GetFileName(p) == "KubeCapture.Contracts.csproj");
        Assert.Empty(withClient);
    }

    private static IReadOnlyList<string> SolutionProjects() =>
        File.ReadAllLines(Path.Combine(Tools.RepositoryRoot, "KubeCapture.sln"))
            .Where(l => l.StartsWith("Project(", StringComparison.Ordinal))
            .Select(l => l.Split(',')[1].Trim().Trim('"').Replace('\\', '/'))
            .Where(p => p.EndsWith(".csproj", StringComparison.Ordinal))
            .Select(p => Path.GetFullPath(Path.Combine(Tools.RepositoryRoot, p)))
            .ToList();

    private static XDocument Project(string path) => XDocument.Load(path);

    private static IEnumerable<string> References(string project) =>
        Project(project).Descendants()
            .Where(e => e.Name.LocalName == "ProjectReference")
            .Select(e => Path.GetFullPath(Path.Combine(Path.GetDirectoryName(project)!, ((string)e.Attribute("Include")!).Replace('\\', '/'))));

    /// <summary>An Exe, or a web project (Microsoft.NET.Sdk.Web builds one unless it says otherwise).</summary>
    private static bool IsExecutable(string project)
    {
        var document = Project(project);
        var outputType = document.Descendants().FirstOrDefault(e => e.Name.LocalName == "OutputType")?.Value;
        var web = ((string?)document.Root!.Attribute("Sdk"))?.Contains(".Web", StringComparison.Ordinal) == true;
        return outputType is "Exe" or "WinExe" || (outputType is null && web);
    }

    private static string TopFolder(string project) => Relative(project).Split('/')[0];

    private static string Relative(string path) => Path.GetRelativePath(Tools.RepositoryRoot, path).Replace('\\', '/');
}
