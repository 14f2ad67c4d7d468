using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using KubeCapture.Agent.Summary;
using PacketDotNet;

// Usage: SummaryBench FILE.pcap FRAMES PASSES
// Loads the pcap's records into memory, then feeds FRAMES of them (cycling) to a new TcpSummary per
// pass, and prints the best and median nanoseconds per frame over PASSES passes. Give it a pcap of at
// least FRAMES frames (`capture_bench.py gen FILE FRAMES tcp`): cycling a TCP pcap starts its sequence
// numbers over, and every data segment after the first cycle then takes the resent-data path.
var path = args[0];
var frames = int.Parse(args[1], CultureInfo.InvariantCulture);
var passes = int.Parse(args[2], CultureInfo.InvariantCulture);
var bytes = File.ReadAllBytes(path);
var link = (LinkLayers)BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(20));
var records = new List<(byte[] Data, long Time)>();
for (var offset = 24; offset + 16 <= bytes.Length;)
{
    var seconds = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(offset));
    var micros = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(offset + 4));
    var length = (int)BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(offset + 8));
    records.Add((bytes.AsSpan(offset + 16, length).ToArray(), (seconds * 1_000_000L) + micros));
    offset += 16 + length;
}

var results = new List<double>();
for (var pass = 0; pass < passes; pass++)
{
    var summary = new TcpSummary(link);
    var watch = Stopwatch.StartNew();
    for (var i = 0; i < frames; i++)
    {
        var (data, time) = records[i % records.Count];
        summary.Observe(data, time + (i / records.Count * 1000L));
    }

    watch.Stop();
    results.Add(watch.Elapsed.TotalNanoseconds / frames);
    GC.KeepAlive(summary.Report());
}

results.Sort();
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{records.Count} distinct frames, {frames} per pass, {passes} passes: best {results[0]:F1} ns/frame, median {results[results.Count / 2]:F1} ns/frame"));
