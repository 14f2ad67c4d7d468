using System.Text.Json;
using Google.Protobuf;
using KubeCapture.Agent.Capture;
using KubeCapture.Agent.Ingest;
using KubeCapture.Agent.Summary;
using KubeCapture.Proto.V1;
using Xunit.Abstractions;

namespace KubeCapture.Agent.Tests.Ingest;

/// <summary>
/// The ingest's gRPC message limit holds what the agent really sends: its largest Chunk, and a
/// Progress and a Finish carrying the largest summary and manifest the agent can produce. The
/// summary is bounded by its own limits (20 findings of at most 5 flows, 10 packet numbers and 8
/// indicators; 64 connections with findings and 64 without), so its worst case is built here from
/// those limits, with the longest addresses (IPv6), numbers and a filter as long as the CRD allows.
/// </summary>
public sealed class IngestMessageLimitsTests(ITestOutputHelper output)
{
    [Fact]
    public void The_largest_messages_the_agent_can_send_fit_the_ingests_limit_four_times_over()
    {
        var chunk = new AgentMessage { Chunk = new Chunk { Offset = long.MaxValue, Data = ByteString.CopyFrom(new byte[IngestUploader.ChunkBytes]) } };
        var summary = JsonSerializer.Serialize(LargestSummary(), SummaryJsonContext.Default.TcpSummaryReport);
        var progress = new AgentMessage { Progress = new Progress { Packets = long.MaxValue, Bytes = long.MaxValue, DroppedByKernel = long.MaxValue, DroppedByInterface = long.MaxValue, SummaryJson = summary } };
        var finish = new AgentMessage { Finish = new Finish { TotalBytes = long.MaxValue, Sha256 = new string('f', 64), ManifestJson = LargestManifest().ToJson() } };

        output.WriteLine($"largest Chunk {chunk.CalculateSize()} bytes, Progress {progress.CalculateSize()} bytes, Finish {finish.CalculateSize()} bytes; limit {IngestMessageLimits.AgentMessage} bytes");
        foreach (var message in new[] { chunk, progress, finish })
        {
            Assert.True(message.CalculateSize() * 4 <= IngestMessageLimits.AgentMessage, $"{message.BodyCase}: {message.CalculateSize()} bytes");
        }

        Assert.True(summary.Length < 512 * 1024); // the ingest reads a summary so far only below this (IngestService.MaxSummaryJson)
    }

    private const string Address = "fd12:3456:789a:bcde:f012:3456:789a:bcde";

    private static TcpSummaryReport LargestSummary()
    {
        var flow = $"[{Address}]:65535 -> [{Address}]:65535";
        var finding = new Finding
        {
            Type = FindingTypes.ResetSuspectedForged,
            Severity = FindingSeverity.Error,
            Message = new string('m', 1024), // the agent's sentences are a few hundred characters; the status keeps at most 1024
            Evidence = new FindingEvidence
            {
                Connections = long.MaxValue,
                Packets = long.MaxValue,
                Flows = Enumerable.Repeat(flow, FindingEvidence.MaxFlows).ToList(),
                PacketNumbers = Enumerable.Repeat(long.MaxValue, FindingEvidence.MaxPackets).ToList(),
                FirstSeen = "2026-12-06T05:39:49.356307Z",
                LastSeen = "2026-12-06T05:39:49.356307Z",
                Indicators = Enumerable.Repeat("sequence-outside-window", 8).ToList(),
            },
        };
        var record = new ConnectionRecord
        {
            Client = $"[{Address}]:65535",
            Server = $"[{Address}]:65535",
            ClientAddress = Address,
            ServerAddress = Address,
            ServerPort = 65535,
            ClientIsn = uint.MaxValue,
            Syns = int.MaxValue,
            SynAcks = int.MaxValue,
            Completed = true,
            Refused = true,
            ClientBytes = long.MaxValue,
            ServerBytes = long.MaxValue,
            ClientWireBytes = long.MaxValue,
            ServerWireBytes = long.MaxValue,
            Closed = true,
            FirstSynFrame = long.MaxValue,
            FirstSynAckFrame = long.MaxValue,
            Reset = new ResetRecord { FromClient = true, Bare = true, Sequence = uint.MaxValue, HopLimit = 255, SideHopLimit = 255, Frame = long.MaxValue },
        };
        var counts = new ResetCounts { Bare = long.MaxValue, WithAck = long.MaxValue };
        return new TcpSummaryReport
        {
            TcpPackets = long.MaxValue,
            OtherPackets = long.MaxValue,
            UndecodablePackets = long.MaxValue,
            Connections = long.MaxValue,
            ConnectionsNotTracked = long.MaxValue,
            Syns = long.MaxValue,
            SynAcks = long.MaxValue,
            HandshakesCompleted = long.MaxValue,
            HandshakesWithoutFinalAck = long.MaxValue,
            SynsUnanswered = long.MaxValue,
            Refused = long.MaxValue,
            ResetsFromClient = counts,
            ResetsFromServer = counts,
            ResetsSuspectedForged = counts,
            Retransmissions = long.MaxValue,
            OutOfOrderSegments = long.MaxValue,
            HandshakeRetransmissions = long.MaxValue,
            ZeroWindowAdvertisements = long.MaxValue,
            LargestAcknowledgedSegment = long.MaxValue,
            SmallestUnacknowledgedRetransmittedSegment = long.MaxValue,
            LocalAddresses = Enumerable.Repeat(Address, 16).ToList(),
            Findings = Enumerable.Repeat(finding, 20).ToList(),
            FindingsOmitted = int.MaxValue,
            ConnectionsWithFindings = Enumerable.Repeat(record, ConnectionRecord.Max).ToList(),
            ConnectionsWithFindingsOmitted = long.MaxValue,
            ConnectionsWithoutFindings = Enumerable.Repeat(record, ConnectionRecord.Max).ToList(),
        };
    }

    private static CaptureManifest LargestManifest() => new()
    {
        AgentVersion = new string('v', 64),
        Interface = new string('i', 15),
        LinkType = "LINUX_SLL2",
        LinkTypeValue = uint.MaxValue,
        Filter = new string('f', 4096), // the CRD's maxLength
        Snaplen = CaptureOptions.MaxSnaplen,
        Limits = new CaptureLimits { MaxPackets = long.MaxValue, Duration = "23h59m59.999s", DurationSeconds = double.MaxValue, MaxBytes = long.MaxValue },
        Start = "2026-12-06T05:39:49.356307Z",
        End = "2026-12-06T05:39:49.356307Z",
        PacketsWritten = long.MaxValue,
        BytesWritten = long.MaxValue,
        PacketsReceived = long.MaxValue,
        PacketsDroppedByKernel = long.MaxValue,
        PacketsDroppedByInterface = long.MaxValue,
        StopReason = "duration",
        Error = new string('e', 1024),
        Sha256 = new string('f', 64),
        Output = new string('o', 512),
        Summary = LargestSummary(),
    };
}
