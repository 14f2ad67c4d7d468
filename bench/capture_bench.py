#!/usr/bin/env python3
"""Helpers for bench/capture-bench.sh.

  capture_bench.py gen FILE COUNT [udp|tcp]
      Writes a pcap of COUNT distinct 60-byte Ethernet frames: IPv4 UDP (replayed in a loop), or the
      TCP mix (the whole run's traffic, replayed once): see tcp_mix below for what it holds.

  capture_bench.py floor LABEL COMMAND...
      Runs COMMAND and prints its CPU and peak RSS (the runtime's floor: the agent printing --version).

  capture_bench.py run NAME TX_NS TX_IF PCAP LOOPS OUT_PCAP -- CAPTURE COMMAND...
      Starts CAPTURE COMMAND (already wrapped in `ip netns exec RX_NS ...`), waits until it says
      it is listening, replays PCAP LOOPS times with `tcpreplay -K --topspeed` from TX_NS/TX_IF,
      stops the capture with SIGTERM and prints one JSON line: packets offered, captured (capinfos
      on the written pcap), dropped by the kernel, CPU user+sys and peak RSS of the capture process.

CPU and peak RSS come from GNU time (its wait4 rusage of the capture process). The capture process
must not be forked from this script: at exec the kernel carries the forking process's RSS high-water
mark into the child's ru_maxrss, so a child of python would report at least python's ~14 MiB.
GNU time is a small process; it forks the capture process and reports that child's rusage.
"""
import json
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time

FRAME_LEN = 60


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


ETH = bytes.fromhex("02000000bb02") + bytes.fromhex("02000000aa01") + b"\x08\x00"
CLIENT = bytes([169, 254, 78, 1])
SERVER = bytes([169, 254, 78, 2])


def ip_header(total: int, ip_id: int, proto: int, src: bytes, dst: bytes) -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ip_id & 0xFFFF, 0, 64, proto, 0, src, dst)
    return ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]


def udp_frame(i: int) -> bytes:
    # Destination MAC is not the receiver's: the frames reach the capture (packet sockets see
    # everything) and the receiving IP stack drops them at once, so only capture costs are measured.
    l4 = struct.pack("!HHHH", 10000 + i % 50000, 9, 8 + 18, 0) + bytes(18)
    data = ETH + ip_header(20 + len(l4), i, 17, CLIENT, SERVER) + l4
    data += bytes(FRAME_LEN - len(data))  # Ethernet padding up to the 60-byte minimum
    assert len(data) == FRAME_LEN, len(data)
    return data


TCP_CONNECTIONS = 100
RESEND_EVERY = 100  # of each connection's exchanges: 1 in 100 a retransmission, 1 in 100 a network duplicate


def tcp_mix(count: int):
    """The TCP mix, COUNT frames: 100 long-lived connections (client ports 40000-40099 to port 443,
    handshakes before the capture starts), taking turns. Each exchange is two frames: the client
    sends a 6-byte data segment (PSH+ACK), the server acknowledges it (ACK). Sequence and ACK numbers
    go on advancing for the whole run, and each end raises its IPv4 identification by one per packet
    on each connection (as Linux does), so every data segment is new data on a known connection, as
    in a long-lived connection's traffic. Of each connection's exchanges, 1 in 100 is the client
    resending its previous segment (same sequence, new identification: a retransmission, spurious
    since it was acknowledged) and 1 in 100 a copy of its previous segment made by the network (same
    identification: a duplicate), each answered by a duplicate ACK: 98% of the data segments new, 2%
    the summary's resent-data path. No TCP options (no timestamps): the identification dates the
    segments. Yields the frames in order."""
    seq = [1000] * TCP_CONNECTIONS
    client_id = [1] * TCP_CONNECTIONS
    server_id = [1] * TCP_CONNECTIONS
    last = [None] * TCP_CONNECTIONS
    for exchange in range(count // 2 + count % 2):
        conn, nth = exchange % TCP_CONNECTIONS, exchange // TCP_CONNECTIONS
        port = 40000 + conn
        kind = nth % RESEND_EVERY
        if last[conn] is not None and kind == RESEND_EVERY - 1:
            data = last[conn]  # the network's copy of the previous segment: the very same packet
        else:
            if last[conn] is not None and kind == RESEND_EVERY // 2:
                sent_seq = seq[conn] - 6  # the previous segment, sent again
            else:
                sent_seq = seq[conn]
                seq[conn] += 6
            l4 = struct.pack("!HHIIBBHHH", port, 443, sent_seq & 0xFFFFFFFF, 5000, 5 << 4, 0x18, 65535, 0, 0) + bytes(6)
            data = ETH + ip_header(20 + len(l4), client_id[conn], 6, CLIENT, SERVER) + l4
            client_id[conn] += 1
            last[conn] = data
        yield data
        if exchange * 2 + 1 < count:
            l4 = struct.pack("!HHIIBBHHH", 443, port, 5000, seq[conn] & 0xFFFFFFFF, 5 << 4, 0x10, 65535, 0, 0)
            ack = ETH + ip_header(20 + len(l4), server_id[conn], 6, SERVER, CLIENT) + l4
            server_id[conn] += 1
            yield ack + bytes(FRAME_LEN - len(ack))


def gen(path: str, count: int, kind: str) -> None:
    frames = tcp_mix(count) if kind == "tcp" else (udp_frame(i) for i in range(count))
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, data in enumerate(frames):
            assert len(data) == FRAME_LEN, len(data)
            f.write(struct.pack("<IIII", 1_700_000_000 + i // 1_000_000, i % 1_000_000, len(data), len(data)) + data)


def count_records(path: str) -> int:
    """Counts the records of a pcap with capinfos (it walks every record header)."""
    out = subprocess.run(["capinfos", "-c", "-M", path], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"Number of packets:\s+(\d+)", out).group(1))


def drain(stream, sink: list, ready: threading.Event) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace")
        sink.append(line)
        if "listening on" in line:
            ready.set()


def timed(command: list, usage_file: str) -> list:
    return ["/usr/bin/time", "-o", usage_file, "-f", "%U %S %M %x", *command]


def read_usage(usage_file: str) -> dict:
    # The last line: GNU time may write "Command exited with non-zero status N" before it.
    user, system, maxrss, status = open(usage_file).read().split("\n")[-2].split()
    return {"cpu_user": float(user), "cpu_sys": float(system), "cpu": float(user) + float(system),
            "peak_rss_kib": int(maxrss), "exit": int(status)}


def child_of(pid: int) -> int:
    """The capture process: GNU time's only child (ip netns exec replaces itself with the tool)."""
    for _ in range(500):
        try:
            children = open(f"/proc/{pid}/task/{pid}/children").read().split()
        except FileNotFoundError:
            children = []
        if children:
            return int(children[0])
        time.sleep(0.01)
    sys.exit(f"no child under /usr/bin/time ({pid})")


def run(name: str, tx_ns: str, tx_if: str, pcap: str, loops: int, out_pcap: str, command: list) -> None:
    usage_file = out_pcap + ".usage"
    proc = subprocess.Popen(timed(command, usage_file), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    capture_pid = child_of(proc.pid)
    out_lines, err_lines = [], []
    ready = threading.Event()
    threads = [
        threading.Thread(target=drain, args=(proc.stdout, out_lines, threading.Event()), daemon=True),
        threading.Thread(target=drain, args=(proc.stderr, err_lines, ready), daemon=True),
    ]
    for t in threads:
        t.start()
    if not ready.wait(30):
        proc.kill()
        sys.exit(f"{name}: never said it was listening: {''.join(err_lines)}")
    time.sleep(0.3)

    replay = subprocess.run(
        ["ip", "netns", "exec", tx_ns, "tcpreplay", "-K", "--topspeed", f"--loop={loops}", "-i", tx_if, pcap],
        capture_output=True, text=True)
    if replay.returncode != 0:
        proc.kill()
        sys.exit(f"tcpreplay failed: {replay.stderr}{replay.stdout}")
    sent = int(re.search(r"Successful packets:\s+(\d+)", replay.stdout).group(1))
    failed = int(re.search(r"Failed packets:\s+(\d+)", replay.stdout).group(1))
    rate = re.search(r"Rated: .*?([\d.]+) pps", replay.stdout)

    time.sleep(1.0)  # let the capture drain its buffer
    os.kill(capture_pid, signal.SIGTERM)
    proc.wait()
    usage = read_usage(usage_file)
    for t in threads:
        t.join(5)
    stderr = "".join(err_lines)

    dropped = None
    recording = re.search(r"recording ended .*?: (\d+) packets seen, (\d+) dropped by the kernel", stderr)
    if recording:  # kubecapture-agent record: no pcap unless a trigger fires; what it saw is on stderr
        dropped = int(recording.group(2))
    elif name == "tcpdump":
        m = re.search(r"(\d+) packets dropped by kernel", stderr)
        dropped = int(m.group(1)) if m else None
    else:
        manifest_path = out_pcap + ".json"
        if os.path.exists(manifest_path):
            with open(manifest_path) as f:
                manifest = json.load(f)
            dropped = manifest.get("packetsDroppedByKernel")
    if proc.returncode != 0 or usage["exit"] != 0:
        sys.exit(f"{name} exited {usage['exit']}: {stderr}")

    result = {
        "tool": name,
        "offered": sent,
        "send_failed": failed,
        "pps": float(rate.group(1)) if rate else None,
        "captured": int(recording.group(1)) if recording else count_records(out_pcap),
        "file_bytes": 0 if recording else os.path.getsize(out_pcap),
        "dropped": dropped,
        "cpu_user": usage["cpu_user"],
        "cpu_sys": usage["cpu_sys"],
        "cpu": usage["cpu"],
        "peak_rss_kib": usage["peak_rss_kib"],
    }
    snapshots = [json.loads(l) for l in out_lines if l.strip().startswith("{")] if recording else []
    if snapshots:  # record: one manifest line per snapshot written (in cluster mode, once stored)
        result["snapshots"] = [{k: m.get(k) for k in ("snapshot", "file", "bytes", "packets", "sha256", "ended")} for m in snapshots]
    print(json.dumps(result), flush=True)


def main() -> None:
    if sys.argv[1] == "gen":
        gen(sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else "udp")
    elif sys.argv[1] == "floor":
        usage_file = f"/tmp/kcB-floor-{os.getpid()}.usage"
        subprocess.run(timed(sys.argv[3:], usage_file), stdout=subprocess.DEVNULL, check=True)
        usage = read_usage(usage_file)
        os.unlink(usage_file)
        print(json.dumps({"tool": sys.argv[2], **usage}))
    elif sys.argv[1] == "run":
        sep = sys.argv.index("--")
        name, tx_ns, tx_if, pcap, loops, out_pcap = sys.argv[2:sep]
        run(name, tx_ns, tx_if, pcap, int(loops), out_pcap, sys.argv[sep + 1:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
