#!/usr/bin/env python3
"""What a ready (pre-plugged) logical port would save a container start in the OVN mode.

On the lab (make lab), N times: (A) today's path: a logical port with the container's
address, a veth added to br-int with its iface-id, timed until ovn-controller marks the
interface ovn-installed; (B) a ready port: that port, already claimed, gets another
address and `ovn-nbctl --wait=hv` waits until every chassis has its flows; (C) the same
update without the wait (the cost of the ovn-nbctl process itself). Everything it makes
(switch kxsw-PID, ports, veths) is removed at the end. Usage: lab/ovn-ready-port.py [N]
"""
import os
import statistics
import subprocess
import sys
import time


def sh(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    switch = f"kxsw-{os.getpid()}"
    tag = f"{os.getpid() % 4096:03x}"
    a, b, c = [], [], []
    made = []
    sh("ovn-nbctl", "ls-add", switch)
    try:
        for i in range(n):
            port, veth = f"{switch}-p{i}", f"kx{tag}v{i}"
            mac, ip = f"0a:58:0a:63:00:{i + 5:02x}", f"10.99.0.{i + 5}"
            mac2, ip2 = f"0a:58:0a:63:01:{i + 5:02x}", f"10.99.1.{i + 5}"
            sh("ovn-nbctl", "lsp-add", switch, port, "--", "lsp-set-addresses", port,
               f"{mac} {ip}", "--", "lsp-set-port-security", port, f"{mac} {ip}")
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", veth + "p")
            made.append(veth)
            sh("ip", "link", "set", veth, "up")
            t = time.monotonic()
            sh("ovs-vsctl", "add-port", "br-int", veth, "--", "set", "interface", veth,
               f"external_ids:iface-id={port}")
            while sh("ovs-vsctl", "--if-exists", "get", "interface", veth,
                     "external_ids:ovn-installed").strip('"') != "true":
                if time.monotonic() - t > 30:
                    raise SystemExit(f"{veth}: not ovn-installed after 30 s")
                time.sleep(0.0005)
            a.append((time.monotonic() - t) * 1000)
            t = time.monotonic()
            sh("ovn-nbctl", "--wait=hv", "lsp-set-addresses", port, f"{mac2} {ip2}", "--",
               "lsp-set-port-security", port, f"{mac2} {ip2}")
            b.append((time.monotonic() - t) * 1000)
            t = time.monotonic()
            sh("ovn-nbctl", "lsp-set-addresses", port, f"{mac} {ip}", "--",
               "lsp-set-port-security", port, f"{mac} {ip}")
            c.append((time.monotonic() - t) * 1000)
    finally:
        for veth in made:
            subprocess.run(["ovs-vsctl", "--if-exists", "del-port", "br-int", veth])
            subprocess.run(["ip", "link", "del", veth])
        subprocess.run(["ovn-nbctl", "--if-exists", "ls-del", switch])

    def f(x):
        return f"p50 {statistics.median(x):.1f} ms (min {min(x):.1f}, max {max(x):.1f})"

    print(f"A new port, add-port until ovn-installed:      {f(a)}")
    print(f"B ready port, new address, --wait=hv:          {f(b)}")
    print(f"C ready port, new address, no wait (process):  {f(c)}")


if __name__ == "__main__":
    main()
