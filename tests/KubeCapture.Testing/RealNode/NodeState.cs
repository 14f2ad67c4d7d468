using System.Text.Json;

namespace KubeCapture.Testing.RealNode;

/// <summary>
/// What a running node tells whoever uses it (state.json in its state directory, written once the
/// node is Ready): where its API is, who may talk to it, and what it holds.
/// </summary>
public sealed record NodeState
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public required string Directory { get; init; }

    public required string ApiServerUrl { get; init; }

    /// <summary>system:masters.</summary>
    public required string AdminToken { get; init; }

    /// <summary>A kubeconfig for the admin, verifying the server against its CA.</summary>
    public required string AdminKubeconfig { get; init; }

    /// <summary>The CA of kube-apiserver's serving certificate (PEM).</summary>
    public required string ServingCaPem { get; init; }

    /// <summary>The front-proxy CA (PEM): kube-apiserver presents a client certificate of it to extension API servers.</summary>
    public required string FrontProxyCaPem { get; init; }

    public required string NodeName { get; init; }

    public required string NodeIp { get; init; }

    public required string PodCidr { get; init; }

    public required string ServiceCidr { get; init; }

    public required string ContainerdSocket { get; init; }

    /// <summary>The images the node holds (containerd's names), the pause image included.</summary>
    public required IReadOnlyList<string> Images { get; init; }

    /// <summary>How long the node took from nothing to Ready, untainted, with DNS and Services working.</summary>
    public required double StartSeconds { get; init; }

    public static NodeState Read(string path) =>
        JsonSerializer.Deserialize<NodeState>(File.ReadAllText(path)) ?? throw new InvalidDataException($"{path} holds no node state");

    public void Write(string path)
    {
        var temporary = path + ".new";
        File.WriteAllText(temporary, JsonSerializer.Serialize(this, Json));
        File.Move(temporary, path, overwrite: true);
    }
}
