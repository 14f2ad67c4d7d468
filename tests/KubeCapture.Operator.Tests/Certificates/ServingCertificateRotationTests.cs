using System.Net;
using System.Text;
using k8s;
using k8s.Models;
using KubeCapture.Operator.Certificates;
using KubeCapture.Testing.Kubernetes;
using KubeCapture.Testing.Pki;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KubeCapture.Operator.Tests.Certificates;

/// <summary>The rotation service as the operator's host runs it: Managed mode on the real kube-apiserver, Mounted mode from files.</summary>
public sealed class ServingCertificateRotationTests
{
    [SkippableFact]
    public async Task Managed_mode_serves_the_Secrets_certificate_and_publishes_its_CA_to_the_APIService()
    {
        var server = await KubeApiServer.SharedAsync();
        var ns = await server.CreateNamespaceAsync("kc-rot");
        using var admin = server.AdminClient();
        var group = $"{ns}.rotation.kubecapture.test";
        await CaBundlePublisherTests.CreateApiServiceAsync(admin, group);
        using var host = Host(admin, new Dictionary<string, string?>
        {
            ["ServingCertificate:Namespace"] = ns,
            ["ServingCertificate:SecretName"] = "serving",
            ["ServingCertificate:DnsNames:0"] = $"kc.{ns}.svc",
            ["ServingCertificate:IpAddresses:0"] = "198.18.0.2",
            ["ServingCertificate:ApiServices:0"] = "v1." + group,
        });

        await host.StartAsync();
        var source = host.Services.GetRequiredService<ServingCertificateSource>();
        await source.Ready.WaitAsync(TimeSpan.FromSeconds(30));

        var stored = ServingMaterial.FromSecretData((await admin.CoreV1.ReadNamespacedSecretAsync("serving", ns)).Data, out _)!;
        Assert.Equal(stored.Serving.ToX509().Thumbprint, source.Current!.Thumbprint);
        Assert.True(source.Current.HasPrivateKey);
        var apiService = await WaitAsync(async () => await admin.ApiregistrationV1.ReadAPIServiceAsync("v1." + group), a => a.Spec.CaBundle is not null);
        Assert.Equal(stored.CaBundlePem, Encoding.ASCII.GetString(apiService.Spec.CaBundle));
        await host.StopAsync();
    }

    [SkippableFact]
    public async Task Mounted_mode_serves_the_files_and_picks_up_a_renewed_certificate_without_a_restart()
    {
        var dir = Directory.CreateTempSubdirectory("kc-mounted-").FullName;
        try
        {
            using var ca = CertificateAuthority.Create("mounted-ca");
            using var first = ca.Issue("first", serverAuth: true, dnsNames: ["kc.ns.svc"]);
            first.Write(Path.Combine(dir, "tls.crt"), Path.Combine(dir, "tls.key"));
            using var host = Host(null, new Dictionary<string, string?>
            {
                ["ServingCertificate:Mode"] = "Mounted",
                ["ServingCertificate:CertificateFile"] = Path.Combine(dir, "tls.crt"),
                ["ServingCertificate:KeyFile"] = Path.Combine(dir, "tls.key"),
            });

            await host.StartAsync();
            var source = host.Services.GetRequiredService<ServingCertificateSource>();
            await source.Ready.WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal(first.Certificate.Thumbprint, source.Current!.Thumbprint);

            using var second = ca.Issue("second", serverAuth: true, dnsNames: ["kc.ns.svc"]);
            second.Write(Path.Combine(dir, "tls.crt.new"), Path.Combine(dir, "tls.key.new"));
            File.Move(Path.Combine(dir, "tls.key.new"), Path.Combine(dir, "tls.key"), overwrite: true);
            File.Move(Path.Combine(dir, "tls.crt.new"), Path.Combine(dir, "tls.crt"), overwrite: true);

            await WaitAsync(() => Task.FromResult(source.Current!), c => c.Thumbprint == second.Certificate.Thumbprint);
            await host.StopAsync();
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task A_bad_configuration_stops_the_host_at_start_with_the_setting_named()
    {
        using var host = Host(null, new Dictionary<string, string?> { ["ServingCertificate:Mode"] = "Managed", ["ServingCertificate:IpAddresses:0"] = "not-an-ip" });

        var e = await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(() => host.StartAsync());

        Assert.Contains("ServingCertificate:IpAddresses: 'not-an-ip' is not an IP address", e.Message, StringComparison.Ordinal);
    }

    private static IHost Host(IKubernetes? kubernetes, Dictionary<string, string?> settings)
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(settings);
        if (kubernetes is not null)
        {
            builder.Services.AddSingleton(kubernetes);
        }

        builder.Services.AddServingCertificate(builder.Configuration);
        return builder.Build();
    }

    private static async Task<T> WaitAsync<T>(Func<Task<T>> read, Func<T, bool> done)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            var value = await read();
            if (done(value))
            {
                return value;
            }

            Assert.True(DateTime.UtcNow < deadline, "timed out waiting");
            await Task.Delay(100);
        }
    }
}
