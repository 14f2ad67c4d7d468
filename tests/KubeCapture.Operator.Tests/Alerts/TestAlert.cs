using System.Text;
using KubeCapture.Operator.Alerts;

namespace KubeCapture.Operator.Tests.Alerts;

/// <summary>One alert as the receiver reads it from Alertmanager's notification (fingerprint f1), with the labels given.</summary>
internal static class TestAlert
{
    public static AlertmanagerAlert Of(string status, IEnumerable<(string Name, string Value)> labels, string startsAt = "2026-12-06T10:48:58Z")
    {
        var json = string.Join(",", labels.Select(l => $"\"{l.Name}\":\"{l.Value}\""));
        var (notification, problem) = AlertmanagerNotification.Parse(Encoding.UTF8.GetBytes(
            $$"""{"version":"4","alerts":[{"status":"{{status}}","labels":{{{json}}},"fingerprint":"f1","startsAt":"{{startsAt}}"}]}"""));
        Assert.Null(problem);
        return Assert.Single(notification!.Alerts);
    }
}
