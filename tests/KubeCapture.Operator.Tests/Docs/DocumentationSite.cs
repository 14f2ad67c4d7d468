using System.Text;
using System.Text.RegularExpressions;

namespace KubeCapture.Operator.Tests.Docs;

/// <summary>
/// README.md and the pages under docs/ as GitHub shows them: their headings (with the anchors GitHub
/// gives them) and their relative links. Code (fenced blocks and inline spans) holds no links and no
/// headings; links with a scheme (https:, mailto:) are not checked here.
/// </summary>
public sealed partial class DocumentationSite
{
    private readonly string root;
    private readonly Dictionary<string, IReadOnlySet<string>> anchors = new(StringComparer.Ordinal);

    private DocumentationSite(string root, IReadOnlyList<string> pages)
    {
        this.root = root;
        Pages = pages;
    }

    /// <summary>The pages, as paths relative to the root with '/' (README.md first).</summary>
    public IReadOnlyList<string> Pages { get; }

    /// <summary>README.md and every docs/*.md below <paramref name="root"/>.</summary>
    public static DocumentationSite Load(string root)
    {
        var docs = Path.Combine(root, "docs");
        var pages = new List<string> { "README.md" };
        if (Directory.Exists(docs))
        {
            pages.AddRange(Directory.EnumerateFiles(docs, "*.md", SearchOption.AllDirectories)
                .Select(p => Path.GetRelativePath(root, p).Replace('\\', '/'))
                .Order(StringComparer.Ordinal));
        }

        return new DocumentationSite(root, pages);
    }

    /// <summary>Every relative link of every page that does not resolve: one line each, saying where it is and why.</summary>
    public IReadOnlyList<string> BrokenLinks() =>
        [.. Pages.SelectMany(page => LinksOf(page).Select(link => Check(page, link)).OfType<string>())];

    /// <summary>The pages under docs/ that neither README.md nor another page links to.</summary>
    public IReadOnlyList<string> Orphans()
    {
        var linked = Pages
            .SelectMany(page => LinksOf(page)
                .Select(link => Resolve(page, link.Target).File)
                .Where(file => file is not null && file != page))
            .ToHashSet(StringComparer.Ordinal);
        return [.. Pages.Where(p => p.StartsWith("docs/", StringComparison.Ordinal) && !linked.Contains(p))];
    }

    /// <summary>
    /// The anchors of a page: GitHub's for its headings (each heading's slug, a repeated one with -1,
    /// -2, ...) and the HTML anchors it writes itself (<c>&lt;a id="x"&gt;&lt;/a&gt;</c>, as the runbook rows of the alerts).
    /// </summary>
    public IReadOnlySet<string> AnchorsOf(string page)
    {
        if (anchors.TryGetValue(page, out var known))
        {
            return known;
        }

        var found = new HashSet<string>(StringComparer.Ordinal);
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (line, _) in ProseLines(page))
        {
            found.UnionWith(HtmlAnchor().Matches(InlineCode().Replace(line, "")).Select(m => m.Groups["id"].Value));
            var heading = Heading().Match(line);
            if (!heading.Success)
            {
                continue;
            }

            var slug = Slug(heading.Groups["text"].Value);
            var count = seen.GetValueOrDefault(slug);
            seen[slug] = count + 1;
            found.Add(count == 0 ? slug : $"{slug}-{count}");
        }

        anchors[page] = found;
        return found;
    }

    /// <summary>
    /// GitHub's anchor for a heading: its text as rendered (links by their text, code and emphasis
    /// marks dropped), lower case, every character but letters, digits, '_', '-' and spaces removed,
    /// spaces turned into '-'.
    /// </summary>
    public static string Slug(string heading)
    {
        var text = MarkdownLink().Replace(heading, "${text}").Replace("`", "", StringComparison.Ordinal).Replace("*", "", StringComparison.Ordinal);
        var slug = new StringBuilder();
        foreach (var c in text.Trim().ToLowerInvariant())
        {
            if (char.IsLetterOrDigit(c) || c is '_' or '-')
            {
                slug.Append(c);
            }
            else if (c == ' ')
            {
                slug.Append('-');
            }
        }

        return slug.ToString();
    }

    private string? Check(string page, Link link)
    {
        var where = $"{page}:{link.Line}: ({link.Target})";
        var (file, anchor) = Resolve(page, link.Target);
        if (file is null)
        {
            return $"{where}: leads outside the repository";
        }

        var path = Path.Combine(root, file);
        if (!File.Exists(path) && !Directory.Exists(path))
        {
            return $"{where}: {file} does not exist";
        }

        if (anchor is null)
        {
            return null;
        }

        if (!file.EndsWith(".md", StringComparison.Ordinal) || !File.Exists(path))
        {
            return $"{where}: an anchor into {file}, which is not a Markdown page";
        }

        var known = AnchorsOf(file);
        return known.Contains(anchor)
            ? null
            : $"{where}: {file} has no heading with the anchor #{anchor} (its anchors: {string.Join(", ", known.Order(StringComparer.Ordinal))})";
    }

    /// <summary>The file a link leads to (relative to the root, '/'-separated; null outside it) and its anchor.</summary>
    private (string? File, string? Anchor) Resolve(string page, string target)
    {
        var hash = target.IndexOf('#', StringComparison.Ordinal);
        var pathPart = hash < 0 ? target : target[..hash];
        var anchor = hash < 0 ? null : Uri.UnescapeDataString(target[(hash + 1)..]);
        if (pathPart.Length == 0)
        {
            return (page, anchor);
        }

        var pageDir = Path.GetDirectoryName(Path.Combine(root, page))!;
        var full = Path.GetFullPath(Path.Combine(pageDir, Uri.UnescapeDataString(pathPart)));
        var relative = Path.GetRelativePath(root, full).Replace('\\', '/');
        return relative.StartsWith("../", StringComparison.Ordinal) || relative == ".." ? (null, anchor) : (relative.TrimEnd('/'), anchor);
    }

    private IEnumerable<Link> LinksOf(string page)
    {
        foreach (var (line, number) in ProseLines(page))
        {
            var prose = InlineCode().Replace(line, "");
            var targets = MarkdownLink().Matches(prose).Select(m => m.Groups["target"].Value)
                .Concat(LinkDefinition().Matches(prose).Select(m => m.Groups["target"].Value));
            foreach (var target in targets.Select(t => t.Trim('<', '>')).Where(t => !Scheme().IsMatch(t)))
            {
                yield return new Link(target, number);
            }
        }
    }

    /// <summary>The lines of a page outside fenced code blocks, with their line numbers.</summary>
    private IEnumerable<(string Line, int Number)> ProseLines(string page)
    {
        string? fence = null;
        var number = 0;
        foreach (var line in File.ReadLines(Path.Combine(root, page)))
        {
            number++;
            var trimmed = line.TrimStart();
            if (fence is null && (trimmed.StartsWith("```", StringComparison.Ordinal) || trimmed.StartsWith("~~~", StringComparison.Ordinal)))
            {
                fence = trimmed[..3];
                continue;
            }

            if (fence is not null)
            {
                if (trimmed.StartsWith(fence, StringComparison.Ordinal))
                {
                    fence = null;
                }

                continue;
            }

            yield return (line, number);
        }
    }

    /// <summary>A relative link: its target as written (path, #anchor or both) and the line it is on.</summary>
    private sealed record Link(string Target, int Line);

    [GeneratedRegex(@"^\s{0,3}#{1,6}\s+(?<text>.*?)\s*#*\s*$")]
    private static partial Regex Heading();

    [GeneratedRegex(@"!?\[(?<text>(?:[^\[\]]|\[[^\[\]]*\])*)\]\((?<target>[^)\s]+)(?:\s+""[^""]*"")?\)")]
    private static partial Regex MarkdownLink();

    [GeneratedRegex(@"^\s{0,3}\[[^\]]+\]:\s*(?<target>\S+)")]
    private static partial Regex LinkDefinition();

    [GeneratedRegex(@"<a\s+(?:id|name)=""(?<id>[^""]+)""")]
    private static partial Regex HtmlAnchor();

    [GeneratedRegex(@"`+[^`]*`+")]
    private static partial Regex InlineCode();

    [GeneratedRegex(@"^[A-Za-z][A-Za-z0-9+.-]*:")]
    private static partial Regex Scheme();
}
