using System.Net;
using KubeCapture.Operator.Certificates;

namespace KubeCapture.Operator.Tests.Ingest;

/// <summary>A CA and an ingest serving certificate from the operator's own issuer, as PEM files in a temporary directory (a mounted Secret).</summary>
public sealed record IngestCertificateFiles(string AuthorityPem, string CertificateFile, string KeyFile, string AuthorityFile)
{
    /// <summary>For <paramref name="address"/> (unless it is 0.0.0.0 or [::]) and 127.0.0.1.</summary>
    public static IngestCertificateFiles Issue(string address, string authorityName = "kubecapture-test-ingest-ca")
    {
        var now = DateTimeOffset.UtcNow;
        var authority = CertificateIssuer.IssueAuthority(authorityName, TimeSpan.FromDays(2), now);
        var ips = new List<IPAddress> { IPAddress.Loopback };
        if (IPAddress.TryParse(address.Trim('[', ']'), out var ip) && !ip.Equals(IPAddress.Any) && !ip.Equals(IPAddress.IPv6Any) && !ip.Equals(IPAddress.Loopback))
        {
            ips.Add(ip);
        }

        var serving = CertificateIssuer.IssueServing(authority, [], ips, TimeSpan.FromDays(1), now);
        var directory = Directory.CreateTempSubdirectory("kcI-tls-").FullName;
        var files = new IngestCertificateFiles(authority.CertificatePem, Path.Combine(directory, "tls.crt"), Path.Combine(directory, "tls.key"), Path.Combine(directory, "ca.crt"));
        File.WriteAllText(files.CertificateFile, serving.CertificatePem);
        File.WriteAllText(files.KeyFile, serving.KeyPem);
        File.WriteAllText(files.AuthorityFile, authority.CertificatePem);
        return files;
    }
}
