using KubeCapture.Testing.Processes;

namespace KubeCapture.Operator.Tests.Release;

/// <summary>
/// <c>bash scripts/plugin-release.sh VERSION</c>: what it refuses. What it produces (one self-contained executable in an
/// archive, the krew manifest with its SHA-256) is checked on the release <c>release.sh</c> makes (ReleaseScriptTests): one
/// publish of the plugin per test run, not two.
/// </summary>
[Collection(ReleaseDist.Name)]
public sealed class PluginReleaseScriptTests
{
    private static readonly string Script = Path.Combine(Tools.RepositoryRoot, "scripts", "plugin-release.sh");
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(10);

    [Fact]
    public async Task A_version_that_is_not_semantic_is_refused_with_exit_2()
    {
        var result = await HostCommand.RunAsync("bash", [Script, "latest"], Patience);

        Assert.Equal(2, result.ExitCode);
        Assert.Equal("plugin-release: 'latest' is not a semantic version (MAJOR.MINOR.PATCH[-PRERELEASE])", result.Stderr.Trim());
    }
}
