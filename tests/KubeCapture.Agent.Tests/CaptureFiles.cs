using System.Security.Cryptography;
using KubeCapture.Agent.Capture;

namespace KubeCapture.Agent.Tests;

/// <summary>A temporary directory for one test's pcaps and manifests, deleted afterwards.</summary>
internal sealed class CaptureFiles : IDisposable
{
    public CaptureFiles(bool everyoneMayWrite = false)
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("kcAT-out-").FullName;
        if (everyoneMayWrite && OperatingSystem.IsLinux())
        {
            File.SetUnixFileMode(Directory, (UnixFileMode)0x1ff); // 0777
        }
    }

    public string Directory { get; }

    public string Pcap(string name = "capture.pcap") => Path.Combine(Directory, name);

    public static CaptureManifest Manifest(string pcap) => CaptureManifest.FromJson(File.ReadAllText(pcap + ".json"));

    public static string Sha256(string path) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));

    public string[] Names() => [.. System.IO.Directory.EnumerateFileSystemEntries(Directory).Select(Path.GetFileName).OfType<string>().Order()];

    public void Dispose() => System.IO.Directory.Delete(Directory, recursive: true);
}
