using KubeCapture.Testing.Processes;

namespace KubeCapture.Operator.Tests.Docs;

/// <summary>
/// README.md is the front page and docs/ the manual: every relative link and anchor between them
/// resolves as GitHub resolves it, and no page of the manual is out of reach. The checker itself is
/// held to broken sites it must refuse.
/// </summary>
public sealed class DocumentationLinkTests : IDisposable
{
    private readonly string site = Directory.CreateTempSubdirectory("kubecapture-docs-").FullName;

    public void Dispose() => Directory.Delete(site, recursive: true);

    [Fact]
    public void Every_relative_link_in_README_and_docs_leads_to_a_file_that_exists_and_every_anchor_to_a_heading_of_it()
    {
        var repository = DocumentationSite.Load(Tools.RepositoryRoot);

        Assert.Contains("docs/security.md", repository.Pages);
        Assert.Contains("docs/architecture.md", repository.Pages);
        var broken = repository.BrokenLinks();
        Assert.True(broken.Count == 0, "broken links:\n" + string.Join('\n', broken));
    }

    [Fact]
    public void Every_page_under_docs_is_linked_from_README_or_another_page()
    {
        var orphans = DocumentationSite.Load(Tools.RepositoryRoot).Orphans();

        Assert.True(orphans.Count == 0, "pages nothing links to: " + string.Join(", ", orphans));
    }

    [Fact]
    public void A_missing_file_a_missing_anchor_and_a_link_out_of_the_repository_are_each_reported_with_page_and_line()
    {
        Write("README.md", "# Front\n\nSee [install](docs/install.md), [gone](docs/gone.md),\n[no such part](docs/install.md#nowhere) and [outside](../elsewhere.md).\n");
        Write("docs/install.md", "# Install\n\n## Upgrade\n\nBack to [the front](../README.md#front), [upgrade](#upgrade), [a typo](#upgarde).\n");

        var broken = DocumentationSite.Load(site).BrokenLinks();

        Assert.Equal(
        [
            "README.md:3: (docs/gone.md): docs/gone.md does not exist",
            "README.md:4: (docs/install.md#nowhere): docs/install.md has no heading with the anchor #nowhere (its anchors: install, upgrade)",
            "README.md:4: (../elsewhere.md): leads outside the repository",
            "docs/install.md:5: (#upgarde): docs/install.md has no heading with the anchor #upgarde (its anchors: install, upgrade)",
        ], broken);
    }

    [Fact]
    public void Links_and_headings_inside_code_are_neither_links_nor_anchors_and_web_links_are_not_checked()
    {
        Write("README.md",
            "# Front\n\n```sh\n# not a heading\necho [x](missing.md)\n```\n\n`[y](missing-too.md)` and [the web](https://example.com/missing.md)\n\n[into code](#not-a-heading)\n");

        var broken = DocumentationSite.Load(site).BrokenLinks();

        Assert.Equal(["README.md:10: (#not-a-heading): README.md has no heading with the anchor #not-a-heading (its anchors: front)"], broken);
    }

    [Theory]
    [InlineData("The kubectl plugin: `kubectl capture`", "the-kubectl-plugin-kubectl-capture")]
    [InlineData("Who may upload a target's pcap", "who-may-upload-a-targets-pcap")]
    [InlineData("Install, upgrade, uninstall", "install-upgrade-uninstall")]
    [InlineData("Cluster mode: the agent streams to the operator's ingest", "cluster-mode-the-agent-streams-to-the-operators-ingest")]
    [InlineData("Chain of custody: the [signed](x.md) **manifest**", "chain-of-custody-the-signed-manifest")]
    [InlineData("Policy_bounds and 2 spaces  here", "policy_bounds-and-2-spaces--here")]
    public void An_anchor_is_GitHubs_slug_of_the_heading_as_rendered(string heading, string anchor) =>
        Assert.Equal(anchor, DocumentationSite.Slug(heading));

    [Fact]
    public void A_repeated_heading_gets_a_numbered_anchor_as_on_GitHub_and_an_HTML_anchor_is_one_outside_code()
    {
        Write("README.md", "# Front\n\n## Options\n\n## Options\n\n### Options ###\n\n| <a id=\"kubecapturenoleader\"></a>`KubeCaptureNoLeader` | `<a id=\"in-code\"></a>` |\n");

        var anchors = DocumentationSite.Load(site).AnchorsOf("README.md");

        Assert.Equal(["front", "kubecapturenoleader", "options", "options-1", "options-2"], anchors.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void A_page_under_docs_that_nothing_else_links_to_is_an_orphan()
    {
        Write("README.md", "# Front\n\n[linked](docs/linked.md)\n");
        Write("docs/linked.md", "# Linked\n\n[deeper](deeper.md)\n");
        Write("docs/deeper.md", "# Deeper\n");
        Write("docs/lonely.md", "# Lonely\n\n[myself](lonely.md#lonely), [me again](#lonely)\n");

        var documentation = DocumentationSite.Load(site);

        Assert.Empty(documentation.BrokenLinks());
        Assert.Equal(["docs/lonely.md"], documentation.Orphans());
    }

    private void Write(string page, string text)
    {
        var path = Path.Combine(site, page);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
    }
}
