using KubeCapture.Operator.Reconciliation;

namespace KubeCapture.Operator.Tests.Reconciliation;

/// <summary>
/// What Ingest:TokenDelivery Auto chooses for each kube-apiserver version: the Secret only where the
/// Node authorizer lets the kubelet read it for an ephemeral container (1.33, kubernetes/kubernetes#114984).
/// </summary>
public sealed class TokenDeliveryChoiceTests
{
    [Theory]
    [InlineData("v1.28.7", TokenDelivery.PodSpec)]
    [InlineData("v1.32.1-eks-4e11c7a", TokenDelivery.PodSpec)]
    [InlineData("v1.32.9+k3s1", TokenDelivery.PodSpec)]
    [InlineData("v1.33.0", TokenDelivery.Secret)]
    [InlineData("v1.33.2-gke.1240000", TokenDelivery.Secret)]
    [InlineData("v1.34.1", TokenDelivery.Secret)]
    [InlineData("v2.0.0", TokenDelivery.Secret)]
    public void Auto_chooses_the_Secret_from_Kubernetes_1_33_on_and_the_pod_spec_before(string gitVersion, TokenDelivery expected)
    {
        var choice = TokenDeliveryChoice.ForServer(gitVersion);

        Assert.Equal(expected, choice.Delivery);
        if (expected == TokenDelivery.PodSpec)
        {
            var warning = Assert.IsType<string>(choice.Warning);
            Assert.StartsWith($"kube-apiserver is v{gitVersion[1..5]}, before 1.33", warning, StringComparison.Ordinal);
            Assert.Contains("kubernetes/kubernetes#114984", warning, StringComparison.Ordinal);
            Assert.Contains("Set Ingest:TokenDelivery=Secret (chart: ingest.tokenDelivery) if this cluster has the fix backported", warning, StringComparison.Ordinal);
        }
        else
        {
            Assert.Null(choice.Warning);
        }
    }

    [Theory]
    [InlineData("")]
    [InlineData(null)]
    [InlineData("garbage")]
    [InlineData("v1")]
    [InlineData("1.x.3")]
    public void A_version_the_operator_cannot_read_chooses_the_pod_spec_so_captures_start_and_the_warning_names_what_it_read(string? gitVersion)
    {
        var choice = TokenDeliveryChoice.ForServer(gitVersion);

        Assert.Equal(TokenDelivery.PodSpec, choice.Delivery);
        Assert.StartsWith($"Ingest:TokenDelivery is Auto and kube-apiserver's version '{gitVersion}' is not one the operator can read", choice.Warning, StringComparison.Ordinal);
        Assert.Contains("kubernetes/kubernetes#114984", choice.Warning, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null, TokenDelivery.Auto)]
    [InlineData("Auto", TokenDelivery.Auto)]
    [InlineData("secret", TokenDelivery.Secret)]
    [InlineData("PodSpec", TokenDelivery.PodSpec)]
    public void The_setting_reads_the_three_deliveries_in_any_case(string? configured, TokenDelivery expected) =>
        Assert.Equal(expected, TokenDeliveryChoice.Read(configured));

    [Theory]
    [InlineData("Literal")]
    [InlineData("1")]
    public void Any_other_setting_stops_the_operator_with_one_sentence_naming_it(string configured)
    {
        var error = Assert.Throws<OperatorConfigurationException>(() => TokenDeliveryChoice.Read(configured));

        Assert.Equal($"Ingest:TokenDelivery '{configured}' is not one of Auto, Secret, PodSpec", error.Message);
    }

    [Fact]
    public void Set_explicitly_Secret_is_taken_as_it_is_and_PodSpec_says_who_can_read_the_token()
    {
        Assert.Null(TokenDeliveryChoice.Configured(TokenDelivery.Secret).Warning);
        Assert.Contains("readable by whoever may read the pod", TokenDeliveryChoice.Configured(TokenDelivery.PodSpec).Warning, StringComparison.Ordinal);
    }
}
