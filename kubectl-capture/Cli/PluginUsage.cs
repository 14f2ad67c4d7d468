namespace KubeCapture.KubectlPlugin.Cli;

/// <summary>kubectl capture --help: every command, and the field guide's scenarios as examples.</summary>
public static class PluginUsage
{
    public const string Text = """
        kubectl capture: tcpdump for pods, as a PacketCapture resource (audited, bounded, stored).

        Usage:
          kubectl capture POD|-l SELECTOR --reason "..." [-i IFACE] [-s SNAPLEN] [-c COUNT]
                          [--duration 60s] [--max-bytes 64Mi] [--name NAME] [--wait] ['BPF FILTER']
          kubectl capture list
          kubectl capture status NAME
          kubectl capture stop NAME
          kubectl capture snapshot NAME [--pod POD]
          kubectl capture download NAME [--pod POD] [--snapshot N] [-o FILE|-]
          kubectl capture follow NAME [--pod POD]
          kubectl capture verify FILE.pcap [FILE.pcap.manifest.json] [--public-key KEY.pem]

        Capture options (tcpdump's; the first limit reached ends the capture):
          --reason TEXT      why you capture (required: captures are audited)
          -l, --selector S   capture every pod matching S (app=web, 'app in (web,db)') instead of POD
          -i IFACE           interface inside the pod (default: any)
          -s SNAPLEN         bytes kept of each packet (default: 128, headers only; 0: whole packet)
          -c COUNT           stop after COUNT packets
          --duration D       stop after D: 30s, 5m, 1h (default: 60s; at most 24h and the cluster's policy)
          --max-bytes SIZE   the pcap never grows past SIZE: 16Mi, 1Gi (default: 64Mi)
          --name NAME        the PacketCapture's name (default: POD-xxxxx, chosen by the server)
          --wait             wait until the capture ends and print the outcome (exit 1 if it failed)
          The BPF filter is compiled by libpcap here first, as the agent will: a typo is exit 2 now.
          A pod named like a command (list, status...) is pod/NAME.

        Commands:
          list               the captures of the namespace: phase, target, packets, drops, findings
          status NAME        phase, each pod's packets and kernel drops, and what the packets show
          stop NAME          end a capture early (sets spec.stop); what was captured is stored
          snapshot NAME      a flight recording (spec.recorder, docs/recorder.md): keep the last window now;
                             listed in status once stored (RBAC: create packetcaptures/snapshot)
          download NAME      the stored pcap through kube-apiserver, SHA-256 checked while it arrives
                             (a mismatch keeps FILE.partial, exit 1), and its signed manifest beside it
                             as FILE.manifest.json; -o - writes the pcap to stdout; --pod for one of several;
                             --snapshot N: snapshot N of a recording instead
          follow NAME        the live pcap on stdout while the capture runs; ends when it ends
          verify FILE        the pcap against its signed manifest, as kubecapture-agent verify: exit 0
                             verified, 3 NOT verified (altered), 4 matches but no --public-key given
                             (the operator's ConfigMap kubecapture-manifest-signing, key public-key.pem)

        Cluster options (as kubectl): --kubeconfig FILE, --context NAME, -n/--namespace NS, KUBECONFIG.
        Exit codes: 0 done, 1 the cluster refused or failed (its message on stderr), 2 bad input.

        Examples (the tcpdump field guide's scenarios):
          # Are the partner's calls even reaching us? 50 packets from their address to port 443
          kubectl capture api-7d9f -n payments -c 50 --reason "partner API calls time out" 'host 203.0.113.40 and tcp port 443'

          # Refused (RST to our SYN) or dropped (SYNs unanswered)? Wait for the verdict
          kubectl capture web-0 --duration 30s --wait --reason "db connections fail" 'tcp port 5432'

          # Who sent the RST? Both ends at once: the operator compares the two captures
          kubectl capture -l 'app in (web,db)' --duration 5m --reason "connection reset by peer" 'tcp port 5432'

          # Small responses fine, large ones hang (MTU blackhole): headers only, 2 minutes
          kubectl capture api-7d9f --duration 2m --reason "large responses hang" 'tcp port 443'

          # Watch it live, then keep the evidence
          kubectl capture follow api-7d9f-x2kqp | tcpdump -nn -l -r -
          kubectl capture follow api-7d9f-x2kqp | wireshark -k -i -
          kubectl capture status api-7d9f-x2kqp
          kubectl capture download api-7d9f-x2kqp -o partner.pcap
          kubectl capture verify partner.pcap --public-key kubecapture.pub
        """;
}
