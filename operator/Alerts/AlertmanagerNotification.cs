using System.Globalization;
using System.Text.Json;

namespace KubeCapture.Operator.Alerts;

/// <summary>
/// One notification of Alertmanager's webhook receiver (<c>"version": "4"</c>): the group's status and
/// its alerts, each with its labels, <c>fingerprint</c> and <c>startsAt</c>. Only what the receiver uses
/// is kept; the rest of the payload (annotations, group labels, URLs) is read past.
/// </summary>
public sealed record AlertmanagerNotification(string Receiver, string Status, IReadOnlyList<AlertmanagerAlert> Alerts)
{
    /// <summary>The only webhook payload version Alertmanager sends (0.x, since 0.7).</summary>
    public const string Version = "4";

    /// <summary>The notification in <paramref name="body"/>, or why it is not one (a sentence naming the field).</summary>
    public static (AlertmanagerNotification? Notification, string? Problem) Parse(ReadOnlySpan<byte> body)
    {
        JsonDocument document;
        try
        {
            var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 16 });
            document = JsonDocument.ParseValue(ref reader);
        }
        catch (JsonException e)
        {
            return (null, $"the body is not JSON ({e.Message}): Alertmanager's webhook sends a JSON notification");
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return (null, $"the body is a JSON {root.ValueKind.ToString().ToLowerInvariant()}, not an object: Alertmanager's webhook sends a JSON notification");
            }

            if (!root.TryGetProperty("version", out var version) || version.ValueKind != JsonValueKind.String)
            {
                return (null, $"the notification has no \"version\": this receiver takes Alertmanager's webhook payload, version {Version}");
            }

            if (version.GetString() != Version)
            {
                return (null, $"the notification's version is \"{version.GetString()}\", not \"{Version}\": this receiver takes Alertmanager's webhook payload version {Version} only");
            }

            if (!root.TryGetProperty("alerts", out var alerts) || alerts.ValueKind != JsonValueKind.Array)
            {
                return (null, "the notification has no \"alerts\" array");
            }

            var parsed = new List<AlertmanagerAlert>();
            var index = 0;
            foreach (var alert in alerts.EnumerateArray())
            {
                var (one, problem) = AlertmanagerAlert.Parse(alert, index++);
                if (problem is not null)
                {
                    return (null, problem);
                }

                parsed.Add(one!);
            }

            return (new AlertmanagerNotification(Text(root, "receiver") ?? "", Text(root, "status") ?? "", parsed), null);
        }
    }

    internal static string? Text(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}

/// <summary>
/// One alert of a notification: <c>firing</c> or <c>resolved</c>, its labels, and what identifies it
/// across Alertmanager's re-sends: the <c>fingerprint</c> of its labels and when it started firing.
/// </summary>
public sealed record AlertmanagerAlert(string Status, IReadOnlyDictionary<string, string> Labels, string Fingerprint, DateTimeOffset StartsAt)
{
    public const string Firing = "firing";
    public const string Resolved = "resolved";

    public string Name => Labels.GetValueOrDefault("alertname") is { Length: > 0 } name ? name : "(no alertname)";

    /// <summary>This firing of this alert: a re-send of it (repeat_interval, a new alert in its group, another replica) has the same key; it firing again after it resolved has another.</summary>
    public string Key => $"{Fingerprint}@{StartsAtText}";

    public string StartsAtText => StartsAt.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.FFFFFFF'Z'", CultureInfo.InvariantCulture);

    /// <summary>How a snapshot's trigger names the alert: <c>HighErrorRate (fingerprint 1f2e3d4c5b6a7988, startsAt 2026-12-06T10:48:58Z)</c>.</summary>
    public string Describe => $"{Name} (fingerprint {Fingerprint}, startsAt {StartsAtText})";

    internal static (AlertmanagerAlert? Alert, string? Problem) Parse(JsonElement alert, int index)
    {
        var at = $"alerts[{index}]";
        if (alert.ValueKind != JsonValueKind.Object)
        {
            return (null, $"{at} is not an object");
        }

        var status = AlertmanagerNotification.Text(alert, "status");
        if (status is not (Firing or Resolved))
        {
            return (null, $"{at}.status is {(status is null ? "missing" : $"\"{status}\"")}: an alert is \"{Firing}\" or \"{Resolved}\"");
        }

        if (!alert.TryGetProperty("labels", out var labels) || labels.ValueKind != JsonValueKind.Object)
        {
            return (null, $"{at}.labels is missing or not an object");
        }

        var named = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var label in labels.EnumerateObject())
        {
            if (label.Value.ValueKind != JsonValueKind.String)
            {
                return (null, $"{at}.labels.{label.Name} is not a string");
            }

            named[label.Name] = label.Value.GetString()!;
        }

        var name = named.GetValueOrDefault("alertname") ?? "(no alertname)";
        if (AlertmanagerNotification.Text(alert, "fingerprint") is not { Length: > 0 } fingerprint)
        {
            return (null, $"{at} (alert {name}) has no fingerprint: Alertmanager sends one with every alert, and it is what tells a re-send from a new alert");
        }

        var startsAtText = AlertmanagerNotification.Text(alert, "startsAt");
        if (!DateTimeOffset.TryParse(startsAtText, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var startsAt))
        {
            return (null, $"{at} (alert {name}).startsAt is {(startsAtText is null ? "missing" : $"\"{startsAtText}\", not a time")}: it is what tells this firing from the next");
        }

        return (new AlertmanagerAlert(status, named, fingerprint, startsAt), null);
    }
}
