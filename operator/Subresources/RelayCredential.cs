using System.Security.Cryptography;
using System.Text;
using KubeCapture.Contracts;
using KubeCapture.Operator.Ingest;

namespace KubeCapture.Operator.Subresources;

/// <summary>
/// The credential one operator replica shows another to have a live stream relayed: an HMAC-SHA256
/// of the request (the target and the follower it is for) under a key derived from the ingest token
/// key every replica shares (<see cref="IngestTokenKeys"/>; the derivation keeps it from ever being a
/// valid upload token). Checked in constant time against the current and the previous key, so a
/// rotation never refuses a relay. Whoever lacks the token key gets no pcap from a replica.
/// </summary>
public sealed class RelayCredential(IngestTokenKeys keys)
{
    public const string Scheme = "KubeCaptureRelay";

    /// <summary>
    /// The Authorization header value for a relay of <paramref name="target"/> to replica
    /// <paramref name="replica"/>, for <paramref name="follower"/>; <paramref name="purpose"/> other
    /// than a follow (a snapshot asked of the holder) is in the MAC, so neither credential serves the other.
    /// </summary>
    public string For(CaptureIdentity target, string follower, string replica, RelayPurpose purpose = RelayPurpose.Follow) =>
        $"{Scheme} {Convert.ToBase64String(Mac(keys.Current, target, follower, replica, purpose))}";

    /// <summary>
    /// Who a relayed snapshot is for, as its credential covers it: the requester, and the Alertmanager
    /// alert that asked (so a credential for one alert's snapshot names no other).
    /// </summary>
    public static string Asker(string requester, string? alert) => alert is null ? requester : $"{requester}\nalert {alert}";

    /// <summary>True when <paramref name="authorization"/> is the credential of a replica holding the token key for this very request.</summary>
    public bool Verifies(string? authorization, CaptureIdentity target, string follower, string replica, RelayPurpose purpose = RelayPurpose.Follow)
    {
        if (authorization is null || !authorization.StartsWith(Scheme + " ", StringComparison.Ordinal))
        {
            return false;
        }

        byte[] presented;
        try
        {
            presented = Convert.FromBase64String(authorization[(Scheme.Length + 1)..]);
        }
        catch (FormatException)
        {
            return false;
        }

        var verified = false;
        foreach (var key in keys.Accepted)
        {
            verified |= CryptographicOperations.FixedTimeEquals(presented, Mac(key, target, follower, replica, purpose));
        }

        return verified;
    }

    private static byte[] Mac(byte[] tokenKey, CaptureIdentity target, string follower, string replica, RelayPurpose purpose)
    {
        var relayKey = HMACSHA256.HashData(tokenKey, "kubecapture replica relay key/v1"u8);
        var scope = purpose == RelayPurpose.Follow ? "kubecapture-relay/v1" : "kubecapture-relay-snapshot/v1";
        return HMACSHA256.HashData(relayKey, Encoding.UTF8.GetBytes($"{scope}\n{target.CaptureUid}\n{target.Namespace}\n{target.CaptureName}\n{target.Pod}\n{follower}\n{replica}"));
    }
}

/// <summary>What one replica asks of the replica holding a target's stream.</summary>
public enum RelayPurpose
{
    /// <summary>Its live stream, for a follower.</summary>
    Follow,

    /// <summary>A snapshot by hand of its flight recording, for a requester.</summary>
    Snapshot,
}
