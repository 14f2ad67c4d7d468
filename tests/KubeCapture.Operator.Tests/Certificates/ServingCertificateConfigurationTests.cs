using KubeCapture.Operator.Certificates;

namespace KubeCapture.Operator.Tests.Certificates;

public sealed class ServingCertificateConfigurationTests
{
    [Theory]
    [InlineData("Mode", "Automatic", "ServingCertificate:Mode 'Automatic' is neither Managed nor Mounted")]
    [InlineData("IpAddresses", "10.0.0.300", "ServingCertificate:IpAddresses: '10.0.0.300' is not an IP address")]
    [InlineData("Validity", "90 days", "ServingCertificate:Validity: invalid duration '90 days'")]
    [InlineData("RenewBefore", "0s", "ServingCertificate:RenewBefore must be positive, not '0s'")]
    [InlineData("RenewBefore", "3000h", "ServingCertificate:RenewBefore (3000h) must be shorter than Validity (2160h)")]
    [InlineData("DnsNames", "", "ServingCertificate: give at least one of DnsNames or IpAddresses")]
    [InlineData("KeyFile", "", "ServingCertificate:Mode is Mounted: set CertificateFile and KeyFile")]
    public void Each_bad_setting_is_named(string key, string value, string expected)
    {
        var options = new ServingCertificateOptions { DnsNames = ["kc.ns.svc"] };
        switch (key)
        {
            case "Mode": options.Mode = value; break;
            case "IpAddresses": options.IpAddresses = [value]; break;
            case "Validity": options.Validity = value; break;
            case "RenewBefore": options.RenewBefore = value; break;
            case "DnsNames": options.DnsNames = []; break;
            case "KeyFile": options.Mode = ServingCertificateModes.Mounted; options.CertificateFile = "/tls/tls.crt"; break;
        }

        var problem = Assert.Single(ServingCertificateConfiguration.Problems(options));
        Assert.StartsWith(expected, problem, StringComparison.Ordinal);
    }

    [Fact]
    public void The_defaults_with_a_name_are_valid()
    {
        Assert.Empty(ServingCertificateConfiguration.Problems(new ServingCertificateOptions { DnsNames = ["kc.ns.svc"] }));
        Assert.Empty(ServingCertificateConfiguration.Problems(new ServingCertificateOptions { Mode = ServingCertificateModes.Mounted, CertificateFile = "/tls/tls.crt", KeyFile = "/tls/tls.key" }));
    }
}
