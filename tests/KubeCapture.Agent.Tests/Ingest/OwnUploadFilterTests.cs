using System.Net;
using KubeCapture.Agent.Ingest;
using PacketDotNet;
using SharpPcap.LibPcap;

namespace KubeCapture.Agent.Tests.Ingest;

/// <summary>The agent's own upload is kept out of the capture by the filter libpcap compiles, whatever the user's filter.</summary>
public sealed class OwnUploadFilterTests
{
    private static readonly IPAddress Ingest = IPAddress.Parse("10.245.46.88");
    private static readonly IPAddress Pod = IPAddress.Parse("10.244.0.3");
    private static readonly IPAddress Client = IPAddress.Parse("10.244.0.4");
    private static readonly IPAddress Gateway = IPAddress.Parse("10.244.0.1");

    [Theory]
    [InlineData("")]
    [InlineData("tcp")]
    [InlineData("-1 = -1")] // a filter that starts with '-' stays a filter
    public void The_upload_to_the_ingest_is_dropped_and_everything_else_the_users_filter_keeps_is_kept(string filter)
    {
        var combined = OwnUploadFilter.Combine(filter, [Ingest], 8081);
        using var program = BpfProgram.Create(LinkLayers.Ethernet, combined);

        Assert.False(program.Matches(Frame(Pod, 41648, Ingest, 8081)));
        Assert.False(program.Matches(Frame(Ingest, 8081, Pod, 41648)));
        Assert.True(program.Matches(Frame(Client, 50170, Pod, 8080)));
        Assert.True(program.Matches(Frame(Pod, 8080, Client, 50170)));
        Assert.True(program.Matches(Frame(Pod, 41648, IPAddress.Parse("10.245.0.9"), 8081))); // another host on that port
        Assert.True(program.Matches(Frame(Pod, 41648, Ingest, 443))); // the same host on another port
        Assert.False(program.Matches(PortUnreachable(Ingest, Pod, quoting: Ingest, port: 8081)));
        // kube-proxy's REJECT of the upload while no operator is ready comes from the node's address on the pod network.
        Assert.False(program.Matches(PortUnreachable(Gateway, Pod, quoting: Ingest, port: 8081)));
        Assert.Equal(filter != "tcp", program.Matches(PortUnreachable(Gateway, Pod, quoting: IPAddress.Parse("10.245.0.9"), port: 8081))); // about another connection: the user's
        Assert.Equal(filter != "tcp", program.Matches(PortUnreachable(Gateway, Pod, quoting: Ingest, port: 443)));
    }

    [Fact]
    public void The_users_filter_still_decides_and_a_name_that_resolves_to_several_addresses_excludes_each()
    {
        var combined = OwnUploadFilter.Combine("tcp port 8080", [Ingest, IPAddress.Parse("fd00::5")], 8081);
        using var program = BpfProgram.Create(LinkLayers.Ethernet, combined);

        Assert.Equal("(tcp port 8080) and not (((tcp port 8081 or icmp or icmp6) and (host 10.245.46.88 or host fd00::5)) or (icmp and (icmp[0] = 3 or icmp[0] = 11) and icmp[8] = 0x45 and icmp[17] = 6 and (icmp[24:4] = 0x0af52e58) and icmp[30:2] = 8081))", combined);
        Assert.True(program.Matches(Frame(Client, 50170, Pod, 8080)));
        Assert.False(program.Matches(Frame(Client, 50170, Pod, 9090)));
        Assert.Equal("tcp port 8080", OwnUploadFilter.Combine("tcp port 8080", [], 8081)); // nothing resolved: the user's filter alone
    }

    [Fact]
    public void An_ingest_given_by_address_needs_no_lookup()
    {
        Assert.Equal([Ingest], OwnUploadFilter.Resolve(new Uri("https://10.245.46.88:8081"), TextWriter.Null));
    }

    /// <summary>An ICMPv4 port unreachable from <paramref name="source"/> to <paramref name="destination"/> quoting the pod's TCP SYN to <paramref name="quoting"/>:<paramref name="port"/>.</summary>
    private static byte[] PortUnreachable(IPAddress source, IPAddress destination, IPAddress quoting, ushort port)
    {
        var quoted = new IPv4Packet(destination, quoting) { PayloadPacket = new TcpPacket(41648, port) { Synchronize = true } };
        quoted.UpdateCalculatedValues();
        var body = new byte[8 + 28];
        quoted.Bytes.AsSpan(0, 28).CopyTo(body.AsSpan(8));
        var icmp = new IcmpV4Packet(new PacketDotNet.Utils.ByteArraySegment(body)) { TypeCode = IcmpV4TypeCode.UnreachablePort };
        var ip = new IPv4Packet(source, destination) { PayloadPacket = icmp };
        var ethernet = new EthernetPacket(System.Net.NetworkInformation.PhysicalAddress.Parse("02-00-00-00-00-01"), System.Net.NetworkInformation.PhysicalAddress.Parse("02-00-00-00-00-02"), EthernetType.IPv4) { PayloadPacket = ip };
        ip.UpdateCalculatedValues();
        return ethernet.Bytes;
    }

    private static byte[] Frame(IPAddress source, ushort sourcePort, IPAddress destination, ushort destinationPort)
    {
        var tcp = new TcpPacket(sourcePort, destinationPort) { Synchronize = true };
        var ip = new IPv4Packet(source, destination) { PayloadPacket = tcp };
        var ethernet = new EthernetPacket(System.Net.NetworkInformation.PhysicalAddress.Parse("02-00-00-00-00-01"), System.Net.NetworkInformation.PhysicalAddress.Parse("02-00-00-00-00-02"), EthernetType.IPv4) { PayloadPacket = ip };
        ip.UpdateCalculatedValues();
        tcp.UpdateCalculatedValues();
        return ethernet.Bytes;
    }
}
