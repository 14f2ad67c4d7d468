using KubeCapture.Operator.Tests.EndToEnd;
using KubeCapture.Operator.Tests.RealNode;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace KubeCapture.Operator.Tests;

/// <summary>The collections of this assembly as xunit makes them (its own factory) go to the orderer that starts the longest first.</summary>
public sealed class LongestFirstCollectionOrdererTests
{
    private static readonly TestAssembly Assembly = new(Reflector.Wrap(typeof(LongestFirstCollectionOrdererTests).Assembly));

    [Fact]
    public void The_longest_collections_start_first_in_their_listed_order_and_the_others_keep_xunits_order()
    {
        var factory = new CollectionPerClassTestCollectionFactory(Assembly, new NullMessageSink());
        var collections = TestClasses().Select(t => factory.Get(Reflector.Wrap(t))).DistinctBy(c => c.UniqueID).ToList();

        var ordered = new LongestFirstCollectionOrderer().OrderTestCollections(collections.AsEnumerable().Reverse()).ToList();

        Assert.Equal(collections.Count, ordered.Count);
        Assert.Equal(LongestFirstCollectionOrderer.Longest.Select(t => t.FullName), ordered.Take(LongestFirstCollectionOrderer.Longest.Count).Select(LongestFirstCollectionOrderer.TypeNameOf));
        Assert.Equal(
            new DefaultTestCollectionOrderer().OrderTestCollections(collections).Where(c => !LongestFirstCollectionOrderer.Longest.Any(t => t.FullName == LongestFirstCollectionOrderer.TypeNameOf(c))).Select(c => c.UniqueID),
            ordered.Skip(LongestFirstCollectionOrderer.Longest.Count).Select(c => c.UniqueID));
        Assert.Equal(typeof(RealNodeCollection).FullName, LongestFirstCollectionOrderer.TypeNameOf(factory.Get(Reflector.Wrap(typeof(JourneyTests)))));
        Assert.Equal(typeof(ControlPlaneOutageTests).FullName, LongestFirstCollectionOrderer.TypeNameOf(factory.Get(Reflector.Wrap(typeof(ControlPlaneOutageTests)))));
    }

    /// <summary>Every class of this assembly with a test method, as xunit finds them.</summary>
    private static IEnumerable<Type> TestClasses() =>
        typeof(LongestFirstCollectionOrdererTests).Assembly.GetTypes()
            .Where(t => t.IsClass && !t.IsAbstract && t.GetMethods().Any(m => m.GetCustomAttributes(typeof(FactAttribute), true).Length > 0));
}
