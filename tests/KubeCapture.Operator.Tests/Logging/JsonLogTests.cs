using System.Text.Json;
using KubeCapture.Operator.Tests.Ingest;

namespace KubeCapture.Operator.Tests.Logging;

/// <summary>The chart's <c>logFormat: json</c> (Logging__Console__FormatterName=json): every line the operator logs is one JSON object.</summary>
public sealed class JsonLogTests
{
    [Fact]
    public async Task With_the_json_formatter_every_log_line_of_the_operator_is_a_JSON_object_with_level_category_and_message()
    {
        var root = Directory.CreateTempSubdirectory("kcL-json-").FullName;
        await using (var host = await OperatorHost.StartProcessAsync(new Dictionary<string, string>
        {
            ["Storage:LocalPath"] = root,
            ["Reconciler:Enabled"] = "false",
            ["Ingest:BindToPodAddress"] = "false",
            ["Logging:Console:FormatterName"] = "json",
        }))
        {
            var lines = host.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

            Assert.NotEmpty(lines);
            foreach (var line in lines)
            {
                using var entry = JsonDocument.Parse(line);
                Assert.False(string.IsNullOrEmpty(entry.RootElement.GetProperty("LogLevel").GetString()), line);
                Assert.False(string.IsNullOrEmpty(entry.RootElement.GetProperty("Category").GetString()), line);
                Assert.True(entry.RootElement.TryGetProperty("Message", out _), line);
            }
        }

        Directory.Delete(root, recursive: true);
    }
}
