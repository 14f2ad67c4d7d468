using KubeCapture.Testing.S3;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace KubeCapture.Operator.Tests.Storage;

/// <summary>Marks a test class whose tests need Ceph RADOS Gateway (<see cref="CephRgwFixture"/>).</summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class RequiresCephRgwAttribute : Attribute;

/// <summary>
/// A [Fact] for tests written once for every S3 server: in a class marked
/// <see cref="RequiresCephRgwAttribute"/> it is skipped with <see cref="CephRgwFixture.InstallHint"/>
/// when the Ceph binaries are missing, except under CI=true, where it runs and fails saying so.
/// </summary>
[XunitTestCaseDiscoverer("KubeCapture.Operator.Tests.Storage.StorageFactDiscoverer", "KubeCapture.Operator.Tests")]
[AttributeUsage(AttributeTargets.Method)]
public sealed class StorageFactAttribute : FactAttribute;

public sealed class StorageFactDiscoverer(IMessageSink diagnosticMessageSink) : FactDiscoverer(diagnosticMessageSink)
{
    public override IEnumerable<IXunitTestCase> Discover(ITestFrameworkDiscoveryOptions discoveryOptions, ITestMethod testMethod, IAttributeInfo factAttribute)
    {
        var needsCeph = testMethod.TestClass.Class.GetCustomAttributes(typeof(RequiresCephRgwAttribute)).Any();
        if (needsCeph && CephRgwFixture.MissingReason is { } missing && !CephRgwFixture.Required)
        {
            return [new XunitSkippedDataRowTestCase(DiagnosticMessageSink, discoveryOptions.MethodDisplayOrDefault(), discoveryOptions.MethodDisplayOptionsOrDefault(), testMethod, missing)];
        }

        return base.Discover(discoveryOptions, testMethod, factAttribute);
    }
}

/// <summary>
/// Every test class that uses the shared Ceph cluster is in this collection: they run one after the
/// other (a test that stops the gateway stops it for all), and the cluster is stopped when the last
/// of them is done.
/// </summary>
[CollectionDefinition(Name)]
public sealed class CephRgwCollection : ICollectionFixture<CephRgwCollection.Lifetime>
{
    public const string Name = "Ceph RADOS Gateway";

    public sealed class Lifetime : IAsyncLifetime
    {
        public Task InitializeAsync() => Task.CompletedTask;

        public Task DisposeAsync() => CephRgwFixture.ShutdownAsync();
    }
}
