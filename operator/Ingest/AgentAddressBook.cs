using System.Collections.Concurrent;
using System.Net;
using KubeCapture.Contracts;
using Microsoft.Extensions.Options;

namespace KubeCapture.Operator.Ingest;

/// <summary>
/// The ingest's side of <see cref="IAgentAddresses"/>: which addresses each target's agent may upload
/// from and on what terms (told by the reconciler), which targets have ended, the check of a
/// stream's peer address against them, and the refused uploads not yet surfaced in the
/// PacketCapture's status.
/// </summary>
public sealed class AgentAddressBook : IAgentAddresses
{
    private readonly ConcurrentDictionary<CaptureIdentity, IPAddress[]> _expected = new();
    private readonly ConcurrentDictionary<CaptureIdentity, UploadTerms> _terms = new();
    private readonly ConcurrentDictionary<CaptureIdentity, string> _closed = new();
    private readonly ConcurrentDictionary<CaptureIdentity, UploadRefusals> _refused = new();
    private readonly bool _required;

    public AgentAddressBook(IOptions<IngestOptions> options, ILogger<AgentAddressBook> logger)
    {
        _required = options.Value.BindToPodAddress;
        if (!_required)
        {
            logger.LogWarning("Ingest:BindToPodAddress is false: an upload is accepted from any address that holds the target's token, and anyone who can read the pod spec holds it; use this only where no reconciler tells the ingest the pod addresses (tests, a standalone ingest)");
        }
    }

    public event Action<CaptureIdentity>? Refused;

    public void Expect(CaptureIdentity target, UploadTerms terms)
    {
        _terms[target] = terms;
        var addresses = terms.PodIps.Select(ip => IPAddress.TryParse(ip, out var parsed) ? Normalize(parsed) : null).OfType<IPAddress>().Distinct().ToArray();
        if (addresses.Length == 0)
        {
            return; // no IP yet: keep what was known (a pod's IPs never change while it runs)
        }

        _expected[target] = addresses;
    }

    public void Unbind(CaptureIdentity target) => _expected[target] = [];

    public void Close(CaptureIdentity target, string why) => _closed[target] = why;

    /// <summary>The capture's terms for the target's upload, or null when the reconciler has not told them (or the binding is off).</summary>
    public UploadTerms? Terms(CaptureIdentity target) => _required ? _terms.GetValueOrDefault(target) : null;

    public void Forget(string captureUid)
    {
        foreach (var target in _expected.Keys.Where(t => t.CaptureUid == captureUid))
        {
            _expected.TryRemove(target, out _);
        }

        foreach (var target in _terms.Keys.Where(t => t.CaptureUid == captureUid))
        {
            _terms.TryRemove(target, out _);
        }

        foreach (var target in _closed.Keys.Where(t => t.CaptureUid == captureUid))
        {
            _closed.TryRemove(target, out _);
        }

        foreach (var target in _refused.Keys.Where(t => t.CaptureUid == captureUid))
        {
            _refused.TryRemove(target, out _);
        }
    }

    public UploadRefusals Refusals(CaptureIdentity target) => _refused.GetValueOrDefault(target, UploadRefusals.None);

    /// <summary>Every target with refused uploads pending.</summary>
    public IReadOnlyList<CaptureIdentity> Pending() => [.. _refused.Where(r => r.Value.Count > 0).Select(r => r.Key)];

    /// <summary>Takes the target's pending refusals away (none: <see cref="UploadRefusals.None"/>), for a writer that is not the reconciler; <see cref="PutBack"/> when it could not write them.</summary>
    public UploadRefusals Take(CaptureIdentity target) => _refused.TryRemove(target, out var pending) ? pending : UploadRefusals.None;

    /// <summary>Refusals <see cref="Take"/>n and not written: pending again, with any counted since (whose message is the newer).</summary>
    public void PutBack(CaptureIdentity target, UploadRefusals taken) =>
        _refused.AddOrUpdate(target, taken, (_, since) => new UploadRefusals(since.Count + taken.Count, since.LastMessage ?? taken.LastMessage, since.Sessions + taken.Sessions));

    public void Surfaced(CaptureIdentity target, UploadRefusals surfaced) =>
        _refused.AddOrUpdate(target, UploadRefusals.None, (_, pending) => pending with
        {
            Count = Math.Max(0, pending.Count - surfaced.Count),
            Sessions = Math.Max(0, pending.Sessions - surfaced.Sessions),
        });

    /// <summary>The addresses the target's agent may upload from, or null when the reconciler has not told them yet.</summary>
    public IReadOnlyList<IPAddress>? Expected(CaptureIdentity target) => _expected.GetValueOrDefault(target);

    /// <summary>Whether an upload for <paramref name="target"/> from <paramref name="peer"/> may go on; the message says why not.</summary>
    public (PeerVerdict Verdict, string? Message) Check(CaptureIdentity target, IPAddress? peer)
    {
        if (!_required)
        {
            return (PeerVerdict.Allowed, null);
        }

        var seen = peer is null ? "an unknown address" : Normalize(peer).ToString();
        if (_closed.TryGetValue(target, out var ended))
        {
            return (PeerVerdict.Refused,
                $"upload for capture {target.Namespace}/{target.CaptureName} (uid {target.CaptureUid}) pod {target.Pod} refused: it comes from {seen}, " +
                $"but the capture of pod {target.Pod} has ended ({ended}): no upload is accepted for it any more");
        }

        if (Expected(target) is not { } expected)
        {
            return (PeerVerdict.Unknown,
                $"the operator does not know the addresses of pod {target.Pod} yet (capture {target.Namespace}/{target.CaptureName} has not been reconciled since this operator started, or the pod has no IP yet); retry");
        }

        if (peer is not null && expected.Contains(Normalize(peer)))
        {
            return (PeerVerdict.Allowed, null);
        }

        if (expected.Count == 0)
        {
            return (PeerVerdict.Refused,
                $"upload for capture {target.Namespace}/{target.CaptureName} (uid {target.CaptureUid}) pod {target.Pod} refused: it comes from {seen}, " +
                $"but pod {target.Pod} was deleted, and its address may belong to another pod now: no upload is accepted for it");
        }

        return (PeerVerdict.Refused,
            $"upload for capture {target.Namespace}/{target.CaptureName} (uid {target.CaptureUid}) pod {target.Pod} refused: it comes from {seen}, " +
            $"but the pod's addresses are {string.Join(", ", expected.Select(a => a.ToString()))} (status.podIPs). Only the capture agent inside pod {target.Pod} " +
            "may upload its pcap; holding the token is not enough. If traffic from pods to the operator is NATed (service mesh, egress NAT), " +
            "the ingest cannot see pod addresses: see docs/security.md, who may upload a target's pcap");
    }

    /// <summary>
    /// Counts a refused upload for the reconciler to surface (status and a Warning Event);
    /// <paramref name="session"/>: refused because another agent session holds the target's upload.
    /// </summary>
    public void Refuse(CaptureIdentity target, string message, bool session = false)
    {
        var sessions = session ? 1 : 0;
        _refused.AddOrUpdate(target, new UploadRefusals(1, message, sessions), (_, pending) => new UploadRefusals(pending.Count + 1, message, pending.Sessions + sessions));
        Refused?.Invoke(target);
    }

    /// <summary>IPv4-mapped IPv6 (a dual-stack listener) as IPv4; IPv6 without its scope.</summary>
    public static IPAddress Normalize(IPAddress address) =>
        address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? new IPAddress(address.GetAddressBytes()) : address;
}

public enum PeerVerdict
{
    /// <summary>The stream comes from one of the pod's addresses.</summary>
    Allowed,

    /// <summary>The reconciler has not told the pod's addresses yet: retry.</summary>
    Unknown,

    /// <summary>The stream comes from somewhere else: refused for good.</summary>
    Refused,
}
