using System.Text.Json;

namespace KubeCapture.Testing.RealNode;

/// <summary>
/// What a node changed on the host, written before each change (host-changes.json in its state
/// directory), so that <see cref="NodeTeardown"/> can undo it from the file alone: after a normal
/// stop, or for a node whose process died.
/// </summary>
public sealed class NodeJournal
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    /// <summary>Host sysctls the kubelet and kube-proxy rewrite (README facts 5, 8), with their values before the node started.</summary>
    public Dictionary<string, string> Sysctls { get; set; } = [];

    /// <summary>Fixed host paths (and the cgroups of pods) that did not exist before: removed whole.</summary>
    public List<string> CreatedPaths { get; set; } = [];

    /// <summary>Fixed host paths that existed, with their entries then: only entries added since are removed.</summary>
    public Dictionary<string, List<string>> PreexistingEntries { get; set; } = [];

    /// <summary>The host's veth links before the node started (a pod's veth left behind is a leftover).</summary>
    public List<string> VethsBefore { get; set; } = [];

    public bool NodeIpAdded { get; set; }

    public bool BridgeCreated { get; set; }

    /// <summary>Teardown finished and the host was found as it was.</summary>
    public bool Clean { get; set; }

    public static NodeJournal? Read(NodeLayout layout) =>
        File.Exists(layout.JournalFile) ? JsonSerializer.Deserialize<NodeJournal>(File.ReadAllText(layout.JournalFile)) : null;

    public void Write(NodeLayout layout)
    {
        var temporary = layout.JournalFile + ".new";
        File.WriteAllText(temporary, JsonSerializer.Serialize(this, Json));
        File.Move(temporary, layout.JournalFile, overwrite: true);
    }
}
