using System.Diagnostics;
using System.Security.Cryptography;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Operator.Tests.Release;

/// <summary><c>bash scripts/plugin-release.sh VERSION</c>: the kubectl plugin as one executable in an archive, and its krew manifest.</summary>
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

    [Fact]
    public async Task The_archive_holds_one_self_contained_executable_that_runs_and_the_krew_manifest_carries_its_SHA256()
    {
        var version = "0.0.0-test";
        var dist = Path.Combine(Tools.RepositoryRoot, "dist");
        var archive = Path.Combine(dist, $"kubectl-capture-{version}-linux-amd64.tar.gz");

        var result = await HostCommand.RunAsync(new ProcessStartInfo("bash", [Script, version]) { Environment = { ["KUBECAPTURE_RELEASE_URL"] = "https://releases.example/kubecapture/" } }, Patience);

        Assert.True(result.ExitCode == 0, result.Stdout + result.Stderr);
        var manifest = await File.ReadAllTextAsync(Path.Combine(dist, "capture.yaml"));
        string sha256;
        await using (var file = File.OpenRead(archive))
        {
            sha256 = Convert.ToHexStringLower(await SHA256.HashDataAsync(file));
        }

        Assert.Contains($"sha256: \"{sha256}\"", manifest, StringComparison.Ordinal);
        Assert.Contains($"version: \"v{version}\"", manifest, StringComparison.Ordinal);
        Assert.Contains($"uri: \"https://releases.example/kubecapture/kubectl-capture-{version}-linux-amd64.tar.gz\"", manifest, StringComparison.Ordinal);
        Assert.DoesNotContain("{{", manifest, StringComparison.Ordinal);
        var unpacked = Directory.CreateTempSubdirectory("kc-plugin-release-");
        try
        {
            (await HostCommand.RunAsync("tar", ["-xzf", archive, "-C", unpacked.FullName], Patience)).EnsureSuccess();
            Assert.Equal(["LICENSE.txt", "kubectl-capture"], unpacked.GetFiles().Select(f => f.Name).Order(StringComparer.Ordinal));
            // Self-contained: it runs with no .NET installed beside it (DOTNET_ROOT pointing nowhere).
            var help = await HostCommand.RunAsync(new ProcessStartInfo(Path.Combine(unpacked.FullName, "kubectl-capture"), ["version"]) { Environment = { ["DOTNET_ROOT"] = "/nonexistent" } }, Patience);
            Assert.True(help.ExitCode == 0, help.Stderr);
            Assert.Equal($"kubectl-capture {version}", help.Stdout.Trim());
        }
        finally
        {
            unpacked.Delete(recursive: true);
            File.Delete(archive);
            File.Delete(Path.Combine(dist, "capture.yaml"));
        }
    }
}
