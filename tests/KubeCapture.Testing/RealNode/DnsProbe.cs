using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace KubeCapture.Testing.RealNode;

/// <summary>One DNS question (type A, over UDP) to one server, as a pod's resolver asks it.</summary>
public static class DnsProbe
{
    /// <summary>The IPv4 addresses <paramref name="server"/> answers for <paramref name="name"/> (empty: no such name, or no answer in time).</summary>
    public static async Task<IReadOnlyList<IPAddress>> ResolveAsync(IPAddress server, string name, TimeSpan timeout)
    {
        var id = BinaryPrimitives.ReadUInt16BigEndian(RandomNumberGenerator.GetBytes(2));
        var query = new List<byte>();
        query.AddRange([(byte)(id >> 8), (byte)id, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // recursion desired, one question
        foreach (var label in name.TrimEnd('.').Split('.'))
        {
            query.Add((byte)label.Length);
            query.AddRange(Encoding.ASCII.GetBytes(label));
        }

        query.AddRange([0, 0, 1, 0, 1]); // root, type A, class IN
        using var udp = new UdpClient(server.AddressFamily);
        await udp.SendAsync(query.ToArray(), new IPEndPoint(server, 53));
        using var cancel = new CancellationTokenSource(timeout);
        UdpReceiveResult answer;
        try
        {
            answer = await udp.ReceiveAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            return [];
        }

        return Addresses(answer.Buffer, id);
    }

    private static List<IPAddress> Addresses(byte[] message, ushort id)
    {
        if (message.Length < 12 || BinaryPrimitives.ReadUInt16BigEndian(message) != id || (message[3] & 0x0f) != 0)
        {
            return [];
        }

        var questions = BinaryPrimitives.ReadUInt16BigEndian(message.AsSpan(4));
        var answers = BinaryPrimitives.ReadUInt16BigEndian(message.AsSpan(6));
        var at = 12;
        for (var q = 0; q < questions; q++)
        {
            at = SkipName(message, at) + 4;
        }

        var addresses = new List<IPAddress>();
        for (var a = 0; a < answers && at < message.Length; a++)
        {
            at = SkipName(message, at);
            var type = BinaryPrimitives.ReadUInt16BigEndian(message.AsSpan(at));
            var length = BinaryPrimitives.ReadUInt16BigEndian(message.AsSpan(at + 8));
            if (type == 1 && length == 4)
            {
                addresses.Add(new IPAddress(message.AsSpan(at + 10, 4)));
            }

            at += 10 + length;
        }

        return addresses;
    }

    private static int SkipName(byte[] message, int at)
    {
        while (message[at] != 0)
        {
            if ((message[at] & 0xc0) == 0xc0)
            {
                return at + 2; // a pointer ends the name
            }

            at += message[at] + 1;
        }

        return at + 1;
    }
}
