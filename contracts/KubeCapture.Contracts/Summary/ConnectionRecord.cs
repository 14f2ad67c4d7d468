namespace KubeCapture.Contracts.Summary;

/// <summary>
/// A connection with a finding, as this end saw it, for comparing with a capture at the other end
/// (<see cref="EndComparison"/>): identified by what survives the path (the client's initial
/// sequence number and the server's port; addresses may be translated on the way), never by time.
/// </summary>
public sealed record ConnectionRecord
{
    public const int Max = 64;

    public required string Client { get; init; }

    public required string Server { get; init; }

    /// <summary>The client's address, without the port (compared with a summary's localAddresses).</summary>
    public required string ClientAddress { get; init; }

    public required string ServerAddress { get; init; }

    public int ServerPort { get; init; }

    /// <summary>The client's initial sequence number (0 when the SYN was not seen).</summary>
    public uint ClientIsn { get; init; }

    public int Syns { get; init; }

    public int SynAcks { get; init; }

    public bool Completed { get; init; }

    public bool Refused { get; init; }

    /// <summary>Payload bytes seen from the client and from the server.</summary>
    public long ClientBytes { get; init; }

    public long ServerBytes { get; init; }

    /// <summary>Payload bytes of every data segment from the client and from the server, retransmissions included (<c>TcpDirection.WireBytes</c>).</summary>
    public long ClientWireBytes { get; init; }

    public long ServerWireBytes { get; init; }

    /// <summary>Data segments the client and the server sent again, as seen here.</summary>
    public long ClientRetransmissions { get; init; }

    public long ServerRetransmissions { get; init; }

    /// <summary>The first ICMP error about the connection (it quotes one of its packets), or null.</summary>
    public IcmpRecord? Icmp { get; init; }

    /// <summary>The capture saw the connection end (FIN both ways, a RST or a refusal).</summary>
    public bool Closed { get; init; }

    public long FirstSynFrame { get; init; }

    public long FirstSynAckFrame { get; init; }

    /// <summary>The first RST seen on the connection (not the refusal), or null.</summary>
    public ResetRecord? Reset { get; init; }
}

/// <summary>A RST as captured: who it claims to come from, its kind, sequence number, TTL/hop limit and packet number.</summary>
public sealed record ResetRecord
{
    public bool FromClient { get; init; }

    public bool Bare { get; init; }

    public uint Sequence { get; init; }

    public int HopLimit { get; init; }

    /// <summary>The TTL/hop limit of the claimed sender's other packets (0: none seen).</summary>
    public int SideHopLimit { get; init; }

    public long Frame { get; init; }
}

/// <summary>An ICMP error about a connection: its type and code, who sent it, its packet number.</summary>
public sealed record IcmpRecord
{
    public int Type { get; init; }

    public int Code { get; init; }

    public string Sender { get; init; } = "";

    public long Frame { get; init; }
}
