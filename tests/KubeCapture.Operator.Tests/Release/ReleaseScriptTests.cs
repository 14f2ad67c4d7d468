using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using KubeCapture.Testing.Containers;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Operator.Tests.Release;

/// <summary><c>bash scripts/release.sh VERSION</c>: what it refuses, and the dist/ it produces.</summary>
[Collection(ReleaseDist.Name)]
public sealed class ReleaseScriptTests
{
    private static readonly string Script = Path.Combine(Tools.RepositoryRoot, "scripts", "release.sh");
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(10);

    [Theory]
    [InlineData("9.9.9", "charts/kubecapture/Chart.yaml has version '{0}' and appVersion '{0}'; set both to '9.9.9' first")]
    [InlineData("v1", "'v1' is not a semantic version (MAJOR.MINOR.PATCH[-PRERELEASE])")]
    public async Task A_version_the_chart_does_not_carry_is_refused_with_exit_2_before_anything_is_built(string version, string message)
    {
        var result = await HostCommand.RunAsync("bash", [Script, version], Patience);

        Assert.Equal(2, result.ExitCode);
        Assert.Equal($"release: {string.Format(System.Globalization.CultureInfo.InvariantCulture, message, ContainerImages.Version)}", result.Stderr.Trim());
        Assert.DoesNotContain("images:", result.Stdout, StringComparison.Ordinal);
    }

    [ImagesFact]
    public async Task A_release_is_both_images_as_OCI_archives_the_chart_package_and_the_kubectl_plugin_with_checksums_that_verify()
    {
        ContainerImages.Require();
        var version = ContainerImages.Version;

        var result = await HostCommand.RunAsync(new ProcessStartInfo("bash", [Script, version]) { Environment = { ["KUBECAPTURE_RELEASE_URL"] = "https://releases.example/kubecapture/" } }, Patience);

        Assert.True(result.ExitCode == 0, result.Stdout + result.Stderr);
        var dist = Path.Combine(Tools.RepositoryRoot, "dist");
        var sums = Path.Combine(dist, $"kubecapture-{version}.sha256");
        Assert.Equal(
            [$"kubecapture-agent-{version}.oci.tar", $"kubecapture-operator-{version}.oci.tar", $"kubecapture-{version}.tgz", $"kubectl-capture-{version}-linux-amd64.tar.gz", "capture.yaml"],
            File.ReadAllLines(sums).Select(l => l.Split("  ")[1]));
        var check = await HostCommand.RunAsync(new System.Diagnostics.ProcessStartInfo("sha256sum", ["-c", sums]) { WorkingDirectory = dist }, Patience);
        Assert.True(check.ExitCode == 0, check.Stdout + check.Stderr);

        var chart = (await HostCommand.RunAsync(Tools.Helm, ["show", "chart", Path.Combine(dist, $"kubecapture-{version}.tgz")], Patience)).EnsureSuccess().Stdout;
        Assert.Contains($"appVersion: {version}", chart, StringComparison.Ordinal);
        foreach (var image in new[] { "agent", "operator" })
        {
            var inspect = (await HostCommand.RunAsync("skopeo", ["inspect", $"oci-archive:{Path.Combine(dist, $"kubecapture-{image}-{version}.oci.tar")}"], Patience)).EnsureSuccess().Stdout;
            using var json = JsonDocument.Parse(inspect);
            Assert.Equal(("linux", "amd64"), (json.RootElement.GetProperty("Os").GetString(), json.RootElement.GetProperty("Architecture").GetString()));
        }

        await AssertPluginArchiveRunsAloneAndTheKrewManifestCarriesItAsync(dist, version);
    }

    /// <summary>The plugin archive holds one self-contained executable that runs without .NET; the krew manifest names it by URL and SHA-256.</summary>
    private static async Task AssertPluginArchiveRunsAloneAndTheKrewManifestCarriesItAsync(string dist, string version)
    {
        var archive = Path.Combine(dist, $"kubectl-capture-{version}-linux-amd64.tar.gz");
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
        }
    }
}
