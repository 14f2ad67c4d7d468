namespace KubeCapture.Agent.Capture;

/// <summary>
/// Where the capture loop puts each packet it keeps: the pcap (<see cref="PcapWriter"/>) for a
/// capture, the flight recorder's ring for a recording. Called on the capture thread only.
/// </summary>
public interface IRecordSink
{
    /// <summary>Packets accepted so far.</summary>
    long Packets { get; }

    /// <summary>Bytes accepted so far, as pcap records (file header included for a pcap).</summary>
    long BytesWritten { get; }

    /// <summary>Takes one packet; false (nothing taken) when the sink's byte ceiling is reached, which ends the capture.</summary>
    bool TryWrite(uint seconds, uint microseconds, ReadOnlySpan<byte> data, uint originalLength);

    /// <summary>Called at least once a second while the capture runs, packets or not.</summary>
    void Flush();
}
