using KubeCapture.Testing.Processes;

namespace KubeCapture.Testing.Pcap;

/// <summary>The real tshark reading a pcap.</summary>
public static class Tshark
{
    /// <summary>
    /// <c>tshark -r FILE -T fields -e F1 -e F2 [-Y DISPLAYFILTER]</c>: one array of field values per packet.
    /// </summary>
    public static async Task<IReadOnlyList<string[]>> FieldsAsync(string path, IReadOnlyList<string> fields, string? displayFilter = null)
    {
        List<string> arguments = ["-n", "-r", path, "-T", "fields", "-E", "separator=\t"];
        foreach (var field in fields)
        {
            arguments.Add("-e");
            arguments.Add(field);
        }

        if (displayFilter is not null)
        {
            arguments.Add("-Y");
            arguments.Add(displayFilter);
        }

        var result = (await HostCommand.RunAsync("tshark", arguments, TimeSpan.FromSeconds(60))).EnsureSuccess();
        return [.. result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('\t'))];
    }
}
