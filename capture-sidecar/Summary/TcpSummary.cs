using System.Globalization;
using KubeCapture.Agent.Capture;
using PacketDotNet;
using static KubeCapture.Agent.Summary.TcpHeaderReader;

namespace KubeCapture.Agent.Summary;

/// <summary>
/// A streaming summary of the TCP conversations in a capture: handshakes completed or not,
/// refusals, resets by direction and kind, retransmissions, zero windows, and the segment sizes that
/// separate acknowledged from lost (the MTU blackhole signature). Fed one frame at a time by the
/// capture loop; memory is bounded by <see cref="MaxTrackedConnections"/>.
/// </summary>
public sealed class TcpSummary
{
    public const int MaxTrackedConnections = 16384;
    private const int MaxFindings = 20;

    private readonly LinkLayers _link;
    private readonly bool _decodes;
    private readonly IReadOnlySet<string> _localAddresses;
    private readonly (ulong High, ulong Low)[] _localBits;
    private readonly ConnectionTable _live = new();
    private readonly Outcomes _archived;

    // The connection of the previous segment: segments of one connection tend to come in runs (a
    // data segment and its ACK, a burst of data), and a match skips the dictionary. Always a live
    // connection: replaced along with its dictionary entry, cleared when connections are archived.
    private TcpConnection? _last;
    private long _frames;
    private long _lastTime;
    private long _tcpPackets;
    private long _otherPackets;
    private long _undecodable;
    private long _syns;
    private long _synAcks;
    private long _zeroWindows;
    private long _icmpErrors;
    private long _resetsFromClientBare;
    private long _resetsFromClientAck;
    private long _resetsFromServerBare;
    private long _resetsFromServerAck;
    private long _notTracked;
    private long _notAnalysed;
    private string? _endedEarly;
    private bool _endedLive;

    /// <param name="link">The capture's link type.</param>
    /// <param name="localAddresses">
    /// The addresses of the host where the capture was taken ("which end am I"): from the client alone
    /// a lost SYN and a lost SYN-ACK look the same, and a RST this host sent is its own. Empty: unknown.
    /// </param>
    public TcpSummary(LinkLayers link, IEnumerable<string>? localAddresses = null)
    {
        _link = link;
        _decodes = TcpHeaderReader.Decodes(link);
        _localAddresses = new SortedSet<string>(localAddresses ?? [], StringComparer.Ordinal);
        _localBits = [.. _localAddresses.Select(a => System.Net.IPAddress.TryParse(a, out var ip) ? ip : null).OfType<System.Net.IPAddress>().Select(Bits)];
        _archived = new Outcomes(_localAddresses);
    }

    /// <summary>Takes one captured frame without a time (tests).</summary>
    public void Observe(ReadOnlySpan<byte> frame) => Observe(frame, frame.Length, 0);

    /// <summary>Takes a whole frame (captured length = length on the wire) with its time (tests).</summary>
    public void Observe(ReadOnlySpan<byte> frame, long timeMicroseconds) => Observe(frame, frame.Length, timeMicroseconds);

    /// <summary>
    /// Takes the next captured frame, with its length on the wire (the record header's original length)
    /// and its capture time in microseconds since the epoch. Frames are numbered from 1 in the order
    /// they come, as in the pcap (Wireshark's frame.number): every frame written must be observed, once.
    /// Never throws for what is inside the frame.
    /// </summary>
    public void Observe(ReadOnlySpan<byte> frame, long wireLength, long timeMicroseconds)
    {
        var number = ++_frames;
        _lastTime = timeMicroseconds;
        if (!_decodes)
        {
            _notAnalysed++;
            return;
        }

        switch (TryRead(_link, frame, (int)Math.Min(wireLength, int.MaxValue), out var segment))
        {
            case Result.NotTcp:
                _otherPackets++;
                return;
            case Result.Undecodable:
                _undecodable++;
                return;
            case Result.LoopbackEcho:
                return;
            case Result.IcmpError:
                _otherPackets++;
                ObserveIcmp(frame, number, timeMicroseconds);
                return;
        }

        _tcpPackets++;
        var flags = segment.Flags;
        var isSyn = (flags & Syn) != 0;
        var hasAck = (flags & Ack) != 0;
        if (isSyn)
        {
            if (hasAck)
            {
                _synAcks++;
            }
            else
            {
                _syns++;
            }
        }

        if (segment.Window == 0 && (flags & (Syn | Rst)) == 0)
        {
            _zeroWindows++;
        }

        var connection = Find(segment, isSyn && !hasAck);
        if (connection is null)
        {
            CountResetWithoutConnection(segment);
            return;
        }

        var fromClient = connection.IsFromClient(segment.FromA);
        connection.Observe(segment, fromClient, number, timeMicroseconds);

        if ((flags & Rst) != 0)
        {
            CountReset(fromClient, hasAck);
        }
    }

    /// <summary>
    /// The input ended before its end: libpcap could not read a file on (cut short, a corrupt record),
    /// or a live capture (<paramref name="live"/>) stopped on an error (libpcap's, or writing the pcap).
    /// <paramref name="error"/> says why. The summary then says that it covers only the packets before.
    /// </summary>
    public void EndedEarly(string error, bool live)
    {
        _endedEarly = error;
        _endedLive = live;
    }

    /// <summary>The summary so far; may be called while capturing.</summary>
    public TcpSummaryReport Report()
    {
        var outcomes = new Outcomes(_localAddresses);
        outcomes.Add(_archived);
        // In the order the connections were first seen, not the table's (which follows their hashes).
        foreach (var connection in _live.Values.OrderBy(c => c.FirstFrame))
        {
            outcomes.Add(connection, _lastTime);
        }

        var input = new SummaryInput
        {
            Packets = _frames,
            LinkType = LinkTypeName(_link),
            LinkTypeValue = (int)_link,
            PacketsNotAnalysed = _notAnalysed,
            Incomplete = _endedEarly is not null,
            Error = _endedEarly,
        };
        var findings = outcomes.Findings(InputFindings(input), _notTracked, MaxFindings, out var omitted);

        return new TcpSummaryReport
        {
            Input = input,
            TcpPackets = _tcpPackets,
            OtherPackets = _otherPackets,
            UndecodablePackets = _undecodable,
            Connections = outcomes.Connections,
            ConnectionsNotTracked = _notTracked,
            Syns = _syns,
            SynAcks = _synAcks,
            HandshakesCompleted = outcomes.Completed,
            HandshakesWithoutFinalAck = outcomes.WithoutFinalAck,
            SynsUnanswered = outcomes.Unanswered,
            Refused = outcomes.Refused,
            // A RST suspected forged is counted as such, not as one the side it names sent.
            ResetsFromClient = new ResetCounts { Bare = _resetsFromClientBare - outcomes.ForgedClientBare, WithAck = _resetsFromClientAck - outcomes.ForgedClientAck },
            ResetsFromServer = new ResetCounts { Bare = _resetsFromServerBare - outcomes.ForgedServerBare, WithAck = _resetsFromServerAck - outcomes.ForgedServerAck },
            ResetsSuspectedForged = new ResetCounts
            {
                Bare = outcomes.ForgedClientBare + outcomes.ForgedServerBare,
                WithAck = outcomes.ForgedClientAck + outcomes.ForgedServerAck,
            },
            Retransmissions = outcomes.Retransmissions,
            SpuriousRetransmissions = outcomes.SpuriousRetransmissions,
            DuplicateSegments = outcomes.DuplicateSegments,
            OutOfOrderSegments = outcomes.OutOfOrder,
            HandshakeRetransmissions = outcomes.HandshakeRetransmissions,
            ZeroWindowAdvertisements = _zeroWindows,
            IcmpErrors = _icmpErrors,
            SynsAnsweredByIcmp = outcomes.AnsweredByIcmp,
            Latency = outcomes.Latency.ToReport(),
            LargestAcknowledgedSegment = outcomes.LargestAcknowledged,
            SmallestUnacknowledgedRetransmittedSegment = outcomes.SmallestLostRetransmitted,
            LocalAddresses = [.. _localAddresses],
            Findings = findings,
            FindingsOmitted = omitted,
            ConnectionsWithFindings = outcomes.Records,
            ConnectionsWithFindingsOmitted = outcomes.RecordsOmitted,
            ConnectionsWithoutFindings = outcomes.CleanRecords,
        };
    }


    /// <summary>libpcap's name for a link type, as tcpdump prints it (its number for one libpcap has no name for, such as USER2: 149).</summary>
    public static string LinkTypeName(LinkLayers link) =>
        LibPcapExports.LinkTypeName((int)link) ?? ((int)link).ToString(CultureInfo.InvariantCulture);

    /// <summary>What the summary could not read or analyse, said first: everything else stands on what it could.</summary>
    private List<Finding> InputFindings(SummaryInput input)
    {
        var findings = new List<Finding>();
        if (input.Incomplete)
        {
            var read = _frames == 1 ? "packet 1" : _frames == 0 ? "the first packet" : $"packet {_frames}";
            findings.Add(new Finding
            {
                Type = FindingTypes.CaptureIncomplete,
                Severity = FindingSeverity.Error,
                Message = _endedLive
                    ? $"The capture is incomplete: it stopped after {read} ({input.Error}). Everything here is about the {_frames} packets captured before; traffic after that was not seen."
                    : $"The capture file is incomplete: it ends early or holds a corrupt record after {read} (libpcap: {input.Error}). Everything here is about the {_frames} packets read before; whatever the capture held after that was not read.",
                Evidence = new FindingEvidence { Packets = _frames, PacketNumbers = _frames > 0 ? [_frames] : [] },
            });
        }

        if (_notAnalysed > 0)
        {
            var description = LibPcapExports.LinkTypeDescription((int)_link) is { Length: > 0 } d ? $" ({d})" : "";
            findings.Add(new Finding
            {
                Type = FindingTypes.LinkTypeNotAnalysed,
                Severity = FindingSeverity.Warning,
                Message = $"{(_notAnalysed == 1 ? "1 packet" : $"{_notAnalysed} packets")} of link type {input.LinkType}{description} not analysed: the summary does not decode that link type, so nothing here is about what they hold (tcpdump -r reads them). It decodes Ethernet (VLAN, QinQ), Linux cooked (LINUX_SLL, LINUX_SLL2), raw IP (RAW, IPV4, IPV6) and loopback (NULL, LOOP).",
                Evidence = new FindingEvidence { Packets = _notAnalysed },
            });
        }

        return findings;
    }

    private TcpConnection? Find(in TcpSegment segment, bool isInitialSyn)
    {
        if (_last is { } last && last.Key.Is(segment.Key) && !(isInitialSyn && last.IsNewConnection(segment)))
        {
            return last;
        }

        return _last = FindInDictionary(segment, isInitialSyn);
    }

    private TcpConnection? FindInDictionary(in TcpSegment segment, bool isInitialSyn)
    {
        var hash = segment.Key.GetHashCode();
        var found = _live.Find(segment.Key, hash);
        if (found is not null && !(isInitialSyn && found.IsNewConnection(segment)))
        {
            return found; // the usual case: one probe, nothing to make
        }

        if (found is null && _live.Count >= MaxTrackedConnections)
        {
            // Full: room is made by archiving the connections that are closed; else this one is counted, not tracked.
            ArchiveClosedConnections();
            if (_live.Count >= MaxTrackedConnections)
            {
                _notTracked++;
                return null;
            }
        }

        // One probe sequence per segment: the slot is found, or made, in place.
        ref var slot = ref _live.Slot(segment.Key, hash, out var exists);
        if (exists)
        {
            if (isInitialSyn && slot!.IsNewConnection(segment))
            {
                _archived.Add(slot, _lastTime);
                slot = NewConnection(segment, isInitialSyn, sawSyn: true);
            }

            return slot;
        }

        slot = NewConnection(segment, isInitialSyn);
        return slot;
    }

    // Without a SYN the direction is a guess: the lower port is taken to be the server's.
    private TcpConnection NewConnection(in TcpSegment segment, bool isInitialSyn, bool sawSyn = false)
    {
        var clientIsA = isInitialSyn ? segment.FromA : segment.Key.APort > segment.Key.BPort;
        var (client, server) = (IsLocal(segment.Key.AddressBits(clientIsA)), IsLocal(segment.Key.AddressBits(!clientIsA)));
        var local = client ? (server ? LocalEnd.Both : LocalEnd.Client) : server ? LocalEnd.Server : LocalEnd.None;
        return new TcpConnection(segment.Key, clientIsA, sawSyn, local);
    }

    private bool IsLocal((ulong High, ulong Low) address)
    {
        foreach (var local in _localBits)
        {
            if (local == address)
            {
                return true;
            }
        }

        return false;
    }

    private static (ulong High, ulong Low) Bits(System.Net.IPAddress address)
    {
        FlowKey.Widen(address.IsIPv4MappedToIPv6 ? address.MapToIPv4().GetAddressBytes() : address.GetAddressBytes(), out var high, out var low);
        return (high, low);
    }

    /// <summary>
    /// An ICMP error: tied to the connection whose packet it quotes when one is tracked (it then
    /// speaks for that connection: a rejected SYN is not a silent drop), else counted by what it says
    /// and about which flow.
    /// </summary>
    private void ObserveIcmp(ReadOnlySpan<byte> frame, long number, long time)
    {
        if (!IcmpErrorReader.TryRead(_link, frame, out var error))
        {
            return;
        }

        _icmpErrors++;
        if (error.QuotedProtocol == 6 && _live.Find(error.QuotedKey, error.QuotedKey.GetHashCode()) is { } connection)
        {
            connection.ObserveIcmp(error, number, time);
        }
        else
        {
            _archived.AddIcmp(error, number, time);
        }
    }

    private void ArchiveClosedConnections()
    {
        _last = null;
        _live.RemoveWhere(c => c.IsClosed, c => _archived.Add(c, _lastTime));
    }

    private void CountResetWithoutConnection(in TcpSegment segment)
    {
        if ((segment.Flags & Rst) != 0)
        {
            CountReset(fromClient: segment.Key.APort > segment.Key.BPort == segment.FromA, (segment.Flags & Ack) != 0);
        }
    }

    private void CountReset(bool fromClient, bool withAck)
    {
        if (fromClient)
        {
            if (withAck)
            {
                _resetsFromClientAck++;
            }
            else
            {
                _resetsFromClientBare++;
            }
        }
        else if (withAck)
        {
            _resetsFromServerAck++;
        }
        else
        {
            _resetsFromServerBare++;
        }
    }
}
