using k8s;

namespace KubeCapture.Operator.Custody;

/// <summary>Configuration section "Custody": where the manifest-signing key lives.</summary>
public sealed class CustodyOptions
{
    public const string Section = "Custody";

    /// <summary>A PEM file for the key (created when missing); empty: the Secret in <see cref="Namespace"/> (with Kubernetes).</summary>
    public string SigningKeyFile { get; set; } = "";

    /// <summary>The namespace of the key's Secret and ConfigMap; empty: LeaderElection:Namespace, POD_NAMESPACE, else "default".</summary>
    public string Namespace { get; set; } = "";
}

/// <summary>Wires the chain of custody: the ledger the reconciler fills and the manifest signer.</summary>
public static class CustodyRegistration
{
    public static IServiceCollection AddCustody(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<CustodyOptions>().Bind(configuration.GetSection(CustodyOptions.Section));
        services.AddSingleton<CustodyLedger>();
        services.AddSingleton<ICustodyWitness>(sp => sp.GetRequiredService<CustodyLedger>());
        services.AddSingleton<ISigningKeySource>(sp =>
        {
            var options = sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<CustodyOptions>>().Value;
            if (options.SigningKeyFile.Length > 0)
            {
                return new FileSigningKey(options.SigningKeyFile);
            }

            if (sp.GetService<IKubernetes>() is { } kubernetes)
            {
                var ns = new[] { options.Namespace, configuration["LeaderElection:Namespace"], Environment.GetEnvironmentVariable("POD_NAMESPACE") }
                    .FirstOrDefault(n => !string.IsNullOrEmpty(n)) ?? "default";
                return new SecretSigningKey(kubernetes, ns);
            }

            sp.GetRequiredService<ILoggerFactory>().CreateLogger<ManifestSigner>().LogWarning(
                "no Custody:SigningKeyFile and no Kubernetes API: manifests are signed with a key that exists only in this process; nobody can verify them after it exits");
            return new EphemeralSigningKey();
        });
        services.AddSingleton<ManifestSigner>();
        return services;
    }
}

/// <summary>A key that lives only in this process (a standalone ingest with nowhere to keep one).</summary>
public sealed class EphemeralSigningKey : ISigningKeySource
{
    public string Describe => "memory (lost when the process exits)";

    public Task<string> LoadOrCreateAsync(Func<string> create, CancellationToken cancellationToken) => Task.FromResult(create());

    public Task PublishAsync(string publicKeyPem, string keyId, CancellationToken cancellationToken) => Task.CompletedTask;
}
