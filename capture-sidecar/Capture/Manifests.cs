using System.Reflection;
using KubeCapture.Agent.Cli;
using PacketDotNet;

namespace KubeCapture.Agent.Capture;

/// <summary>Puts a finished capture's facts into its manifest.</summary>
public static class Manifests
{
    public static string AgentVersion { get; } =
        typeof(Manifests).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    public static CaptureManifest Build(CaptureOptions options, LinkLayers link, CaptureOutcome outcome, PcapWriter writer, string sha256, string output) => new()
    {
        AgentVersion = AgentVersion,
        Interface = options.Interface,
        LinkType = InterfaceCatalog.DltName(link),
        LinkTypeValue = (uint)link,
        Filter = options.Filter,
        CaptureFilter = outcome.CaptureFilter,
        PacketsAdded = outcome.PacketsAdded,
        PacketsDiscarded = outcome.PacketsDiscarded,
        Snaplen = CaptureSession.EffectiveSnaplen(options.Snaplen),
        Limits = new CaptureLimits
        {
            MaxPackets = options.MaxPackets,
            Duration = Quantities.FormatDuration(options.Duration),
            DurationSeconds = options.Duration.TotalSeconds,
            MaxBytes = options.MaxBytes,
        },
        Start = CaptureManifest.FormatTimestamp(outcome.Started),
        End = CaptureManifest.FormatTimestamp(outcome.Ended),
        PacketsWritten = writer.Packets,
        BytesWritten = writer.BytesWritten,
        PacketsReceived = outcome.PacketsReceived,
        PacketsDroppedByKernel = outcome.PacketsDroppedByKernel,
        PacketsDroppedByInterface = outcome.PacketsDroppedByInterface,
        StopReason = outcome.StopReason.ToWire(),
        Error = outcome.Error,
        Sha256 = sha256,
        Output = output,
        Summary = outcome.Summary,
    };
}
