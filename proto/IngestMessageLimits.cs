namespace KubeCapture.Proto.V1;

/// <summary>
/// The largest gRPC message each side of the ingest takes, from what the agent really sends: a
/// Chunk carries at most 60 KiB of pcap, and a Progress or Finish the agent's TCP summary or
/// manifest, bounded by the summary's own limits (20 findings, 128 connection records) to a few
/// hundred KiB at the very most (measured: IngestMessageLimitsTests). The ingest refuses anything
/// larger (RESOURCE_EXHAUSTED) before reading it; what it sends back (Accepted, Ack, Stop, Stored) is small.
/// </summary>
public static class IngestMessageLimits
{
    /// <summary>The largest message an agent may send: 1 MiB.</summary>
    public const int AgentMessage = 1 << 20;

    /// <summary>The largest message the ingest sends an agent: 64 KiB.</summary>
    public const int IngestMessage = 64 << 10;
}
