using System.Text.RegularExpressions;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Operator.Tests.Architecture;

/// <summary>
/// The operator's folders form layers a reader can draw: no namespace reaches, through any chain of
/// references, back to itself. Read from the sources (Roslyn-free): every type a file declares, and
/// every other file that names it outside comments and string literals.
/// </summary>
public sealed partial class NamespaceLayerTests
{
    [Fact]
    public void No_namespace_of_the_operator_depends_on_itself_through_others()
    {
        var graph = OperatorGraph();
        Assert.True(graph.Count >= 15, $"the operator's namespaces were read ({graph.Count})");

        var cycles = StronglyConnected(graph.ToDictionary(n => n.Key, n => (IReadOnlyCollection<string>)n.Value.Keys))
            .Where(c => c.Count > 1)
            .Select(c => string.Join("; ", c.SelectMany(from => graph[from].Where(to => c.Contains(to.Key)).Select(to => $"{Short(from)} -> {Short(to.Key)} ({string.Join(", ", to.Value.Take(3))})"))))
            .ToList();

        Assert.Empty(cycles);
    }

    [Fact]
    public void A_cycle_between_two_namespaces_is_found()
    {
        var graph = new Dictionary<string, IReadOnlyCollection<string>>
        {
            ["A"] = ["B"],
            ["B"] = ["C"],
            ["C"] = ["A"],
            ["D"] = ["A"],
        };

        var cycle = Assert.Single(StronglyConnected(graph), c => c.Count > 1);
        Assert.Equal(["A", "B", "C"], cycle.Order(StringComparer.Ordinal));
    }

    /// <summary>Namespace -> namespaces it names a type of -> "File.cs: Type" that does.</summary>
    private static Dictionary<string, Dictionary<string, SortedSet<string>>> OperatorGraph()
    {
        var root = Path.Combine(Tools.RepositoryRoot, "operator");
        var files = Directory.EnumerateFiles(root, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                     && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .Select(f => (Path: f, Text: File.ReadAllText(f)))
            .Select(f => (f.Path, Namespace: NamespaceDeclaration().Match(f.Text) is { Success: true } m ? m.Groups[1].Value : "KubeCapture.Operator", f.Text))
            .ToList();
        var declaredIn = files
            .SelectMany(f => TypeDeclaration().Matches(f.Text).Select(m => (Type: m.Groups[1].Value, f.Namespace)))
            .GroupBy(t => t.Type)
            .Where(g => g.Select(t => t.Namespace).Distinct().Count() == 1)
            .ToDictionary(g => g.Key, g => g.First().Namespace, StringComparer.Ordinal);

        var graph = files.Select(f => f.Namespace).Distinct().ToDictionary(n => n, _ => new Dictionary<string, SortedSet<string>>(StringComparer.Ordinal), StringComparer.Ordinal);
        foreach (var file in files)
        {
            var code = CommentOrString().Replace(file.Text, " ");
            foreach (Match word in Identifier().Matches(code))
            {
                if (declaredIn.TryGetValue(word.Value, out var target) && target != file.Namespace)
                {
                    if (!graph[file.Namespace].TryGetValue(target, out var why))
                    {
                        graph[file.Namespace][target] = why = new SortedSet<string>(StringComparer.Ordinal);
                    }

                    why.Add($"{Path.GetFileName(file.Path)}: {word.Value}");
                }
            }
        }

        return graph;
    }

    /// <summary>Tarjan's strongly connected components.</summary>
    private static List<List<string>> StronglyConnected(IReadOnlyDictionary<string, IReadOnlyCollection<string>> graph)
    {
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        var low = new Dictionary<string, int>(StringComparer.Ordinal);
        var stack = new Stack<string>();
        var onStack = new HashSet<string>(StringComparer.Ordinal);
        var components = new List<List<string>>();
        void Visit(string node)
        {
            index[node] = low[node] = index.Count;
            stack.Push(node);
            onStack.Add(node);
            foreach (var next in graph.TryGetValue(node, out var edges) ? edges : [])
            {
                if (!index.ContainsKey(next))
                {
                    Visit(next);
                    low[node] = Math.Min(low[node], low[next]);
                }
                else if (onStack.Contains(next))
                {
                    low[node] = Math.Min(low[node], index[next]);
                }
            }

            if (low[node] == index[node])
            {
                var component = new List<string>();
                string member;
                do
                {
                    member = stack.Pop();
                    onStack.Remove(member);
                    component.Add(member);
                }
                while (member != node);
                components.Add(component);
            }
        }

        foreach (var node in graph.Keys.Order(StringComparer.Ordinal))
        {
            if (!index.ContainsKey(node))
            {
                Visit(node);
            }
        }

        return components;
    }

    private static string Short(string ns) => ns == "KubeCapture.Operator" ? "(root)" : ns["KubeCapture.Operator.".Length..];

    [GeneratedRegex(@"^namespace ([\w.]+);", RegexOptions.Multiline)]
    private static partial Regex NamespaceDeclaration();

    [GeneratedRegex(@"^(?:public |internal )?(?:static |sealed |abstract |partial |readonly )*(?:class|record|struct|interface|enum) (\w+)", RegexOptions.Multiline)]
    private static partial Regex TypeDeclaration();

    /// <summary>Comments, and string literals (plain, verbatim, interpolated text, raw), which name no type.</summary>
    [GeneratedRegex(@"//[^\n]*|/\*.*?\*/|""""""(?s:.*?)""""""|@""(?:""""|[^""])*""|""(?:\\.|[^""\\\n])*""|'(?:\\.|[^'\\])'", RegexOptions.Singleline)]
    private static partial Regex CommentOrString();

    [GeneratedRegex(@"(?<!\w)[A-Z]\w*")]
    private static partial Regex Identifier();
}
