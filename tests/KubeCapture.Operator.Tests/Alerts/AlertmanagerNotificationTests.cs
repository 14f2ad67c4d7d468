using System.Text;
using KubeCapture.Operator.Alerts;

namespace KubeCapture.Operator.Tests.Alerts;

/// <summary>Alertmanager's webhook payload (version 4) read, and each malformed one refused naming the problem (the cluster path is in AlertReceiverEndToEndTests).</summary>
public sealed class AlertmanagerNotificationTests
{
    /// <summary>A notification as Alertmanager 0.25 sends it (its notify/webhook Message), two alerts of one group.</summary>
    public const string Sent = """
        {"receiver":"kubecapture","status":"firing","alerts":[
          {"status":"firing","labels":{"alertname":"CheckoutResets","namespace":"shop","pod":"db-0","severity":"page"},
           "annotations":{"summary":"resets"},"startsAt":"2026-12-06T10:48:58.848955123Z","endsAt":"0001-01-01T00:00:00Z",
           "generatorURL":"http://prometheus/graph","fingerprint":"1f2e3d4c5b6a7988"},
          {"status":"resolved","labels":{"alertname":"CheckoutSlow","namespace":"shop","kubecapture_capture":"db-resets"},
           "annotations":{},"startsAt":"2026-12-06T10:40:00Z","endsAt":"2026-12-06T10:45:00Z","generatorURL":"","fingerprint":"0a0b0c0d0e0f1011"}],
         "groupLabels":{"alertname":"CheckoutResets"},"commonLabels":{"namespace":"shop"},"commonAnnotations":{},
         "externalURL":"http://alertmanager:9093","version":"4","groupKey":"{}:{alertname=\"CheckoutResets\"}","truncatedAlerts":0}
        """;

    [Fact]
    public void A_version_4_notification_gives_each_alert_with_its_status_labels_fingerprint_and_start()
    {
        var (notification, problem) = AlertmanagerNotification.Parse(Encoding.UTF8.GetBytes(Sent));

        Assert.Null(problem);
        Assert.Equal(("kubecapture", "firing"), (notification!.Receiver, notification.Status));
        Assert.Equal(
            [("CheckoutResets", "firing", "1f2e3d4c5b6a7988@2026-12-06T10:48:58.8489551Z", "db-0"), ("CheckoutSlow", "resolved", "0a0b0c0d0e0f1011@2026-12-06T10:40:00Z", "")],
            notification.Alerts.Select(a => (a.Name, a.Status, a.Key, a.Labels.GetValueOrDefault("pod") ?? "")));
        Assert.Equal("CheckoutResets (fingerprint 1f2e3d4c5b6a7988, startsAt 2026-12-06T10:48:58.8489551Z)", notification.Alerts[0].Describe);
    }

    [Fact]
    public void The_same_alert_re_sent_has_the_same_key_and_firing_again_later_another()
    {
        static string KeyOf(string startsAt) => AlertmanagerNotification.Parse(Encoding.UTF8.GetBytes(
            $$"""{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"A"},"fingerprint":"f","startsAt":"{{startsAt}}"}]}""")).Notification!.Alerts[0].Key;

        Assert.Equal(KeyOf("2026-12-06T10:48:58Z"), KeyOf("2026-12-06T11:48:58+01:00"));
        Assert.NotEqual(KeyOf("2026-12-06T10:48:58Z"), KeyOf("2026-12-06T12:00:00Z"));
    }

    [Theory]
    [InlineData("{\"version\":\"4\",", "the body is not JSON (")]
    [InlineData("[1]", "the body is a JSON array, not an object")]
    [InlineData("{\"alerts\":[]}", "the notification has no \"version\": this receiver takes Alertmanager's webhook payload, version 4")]
    [InlineData("{\"version\":\"3\",\"alerts\":[]}", "the notification's version is \"3\", not \"4\": this receiver takes Alertmanager's webhook payload version 4 only")]
    [InlineData("{\"version\":\"4\"}", "the notification has no \"alerts\" array")]
    [InlineData("{\"version\":\"4\",\"alerts\":[{\"status\":\"pending\",\"labels\":{},\"fingerprint\":\"f\",\"startsAt\":\"2026-12-06T10:00:00Z\"}]}", "alerts[0].status is \"pending\": an alert is \"firing\" or \"resolved\"")]
    [InlineData("{\"version\":\"4\",\"alerts\":[{\"status\":\"firing\",\"fingerprint\":\"f\",\"startsAt\":\"2026-12-06T10:00:00Z\"}]}", "alerts[0].labels is missing or not an object")]
    [InlineData("{\"version\":\"4\",\"alerts\":[{\"status\":\"firing\",\"labels\":{\"pod\":1},\"fingerprint\":\"f\",\"startsAt\":\"2026-12-06T10:00:00Z\"}]}", "alerts[0].labels.pod is not a string")]
    [InlineData("{\"version\":\"4\",\"alerts\":[{\"status\":\"firing\",\"labels\":{\"alertname\":\"A\"},\"startsAt\":\"2026-12-06T10:00:00Z\"}]}", "alerts[0] (alert A) has no fingerprint")]
    [InlineData("{\"version\":\"4\",\"alerts\":[{\"status\":\"firing\",\"labels\":{\"alertname\":\"A\"},\"fingerprint\":\"f\",\"startsAt\":\"soon\"}]}", "alerts[0] (alert A).startsAt is \"soon\", not a time")]
    public void A_malformed_notification_is_refused_naming_the_problem(string body, string problem)
    {
        var (notification, refused) = AlertmanagerNotification.Parse(Encoding.UTF8.GetBytes(body));

        Assert.Null(notification);
        Assert.StartsWith(problem, refused, StringComparison.Ordinal);
    }
}
