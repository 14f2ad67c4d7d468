using KubeCapture.Operator.Tests.EndToEnd;
using KubeCapture.Operator.Tests.RealNode;
using KubeCapture.Operator.Tests.Storage;
using Xunit.Abstractions;
using Xunit.Sdk;

[assembly: TestCollectionOrderer("KubeCapture.Operator.Tests.LongestFirstCollectionOrderer", "KubeCapture.Operator.Tests")]

namespace KubeCapture.Operator.Tests;

/// <summary>
/// Starts the test collections that take minutes first, the rest after them in xunit's own order.
/// xunit runs as many collections at once as there are cores (two in CI), each to its end, so the
/// run lasts at least as long as its longest collection plus whatever started before it on the same
/// core: started last (as xunit's order happened to start <see cref="ControlPlaneOutageTests"/>), a
/// three-minute collection ran alone while the other core had nothing left to do. Started first, the
/// short collections fill the other core meanwhile. Only the order changes: no test is skipped, shortened
/// or run beside another it did not already run beside.
/// </summary>
public sealed class LongestFirstCollectionOrderer : ITestCollectionOrderer
{
    /// <summary>
    /// The collections that take longest, longest first (measured in CI's trx: each 30 s to 3 minutes
    /// with its fixture): a test class of its own collection, or a <see cref="CollectionDefinitionAttribute"/> class.
    /// </summary>
    public static readonly IReadOnlyList<Type> Longest =
    [
        typeof(RealNodeCollection),
        typeof(ControlPlaneOutageTests),
        typeof(ApiServerClusterCollection),
        typeof(CephRgwCollection),
        typeof(ReplicasEndToEndTests),
        typeof(Reconciliation.PacketCaptureControllerTests),
        typeof(Ingest.UploadOwnershipTests),
        typeof(Release.ReleaseDist),
    ];

    public IEnumerable<ITestCollection> OrderTestCollections(IEnumerable<ITestCollection> testCollections)
    {
        var byXunit = new DefaultTestCollectionOrderer().OrderTestCollections(testCollections).ToList();
        return byXunit.OrderBy(Rank).ToList(); // a stable sort: the others keep xunit's order
    }

    /// <summary>The place of a collection in <see cref="Longest"/>; every other collection after them.</summary>
    private static int Rank(ITestCollection collection)
    {
        var type = TypeNameOf(collection);
        for (var i = 0; i < Longest.Count; i++)
        {
            if (Longest[i].FullName == type)
            {
                return i;
            }
        }

        return Longest.Count;
    }

    /// <summary>
    /// The type that makes the collection: its <see cref="CollectionDefinitionAttribute"/> class, or for a
    /// test class in a collection of its own (xunit names it "Test collection for CLASS"), that class.
    /// </summary>
    public static string TypeNameOf(ITestCollection collection)
    {
        const string perClass = "Test collection for ";
        return collection.CollectionDefinition?.Name
            ?? (collection.DisplayName.StartsWith(perClass, StringComparison.Ordinal) ? collection.DisplayName[perClass.Length..] : collection.DisplayName);
    }
}
