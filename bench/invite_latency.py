"""How long each INVITE spent inside a proxy, from a packet capture of its address.

Usage: invite_latency.py CAPTURE.pcap PROXY_IP:PORT

Reads a classic pcap file (what `tcpdump -w` writes; Ethernet or Linux "cooked" framing,
IPv4/UDP) and pairs, by Call-ID, the first INVITE sent TO the proxy's address with the
first INVITE sent FROM it. Prints "<median µs> <99th percentile µs> <pairs>" for the
differences: the time the proxy added to the call's setup, socket queues included.
Used by bench/dispatcher.sh.
"""

import struct
import sys


def packets(path):
    """Yields (seconds, source, destination, payload) for each IPv4 UDP packet."""
    with open(path, "rb") as capture:
        header = capture.read(24)
        if len(header) < 24:
            return
        magic = struct.unpack("<I", header[:4])[0]
        if magic in (0xA1B2C3D4, 0xA1B23C4D):
            endian = "<"
        else:
            endian = ">"
            magic = struct.unpack(">I", header[:4])[0]
        fraction = 1e-9 if magic == 0xA1B23C4D else 1e-6
        link = struct.unpack(endian + "I", header[20:24])[0]
        framing = {1: 14, 113: 16, 0: 4}.get(link)
        if framing is None:
            sys.exit(f"unsupported link type {link}")
        while True:
            record = capture.read(16)
            if len(record) < 16:
                return
            seconds, part, kept, _ = struct.unpack(endian + "IIII", record)
            frame = capture.read(kept)
            ip = frame[framing:]
            if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
                continue
            start = (ip[0] & 0x0F) * 4
            udp = ip[start:]
            source = (ip[12:16], struct.unpack(">H", udp[0:2])[0])
            destination = (ip[16:20], struct.unpack(">H", udp[2:4])[0])
            yield seconds + part * fraction, source, destination, udp[8:]


def call_id(payload):
    for line in payload.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() in (b"call-id", b"i"):
            return value.strip()
        if not line:
            return None
    return None


def main():
    path, proxy = sys.argv[1], sys.argv[2]
    host, _, port = proxy.rpartition(":")
    proxy = (bytes(int(part) for part in host.split(".")), int(port))
    arrived, left = {}, {}
    for at, source, destination, payload in packets(path):
        if not payload.startswith(b"INVITE "):
            continue
        key = call_id(payload)
        if key is None:
            continue
        if destination == proxy:
            arrived.setdefault(key, at)
        elif source == proxy:
            left.setdefault(key, at)
    spent = sorted(
        (left[key] - arrived[key]) * 1e6
        for key in arrived.keys() & left.keys()
        if left[key] >= arrived[key]
    )
    if not spent:
        print("0 0 0")
        return

    def percentile(q):
        return spent[min(len(spent) - 1, int(round(q * (len(spent) - 1))))]

    print(f"{percentile(0.5):.0f} {percentile(0.99):.0f} {len(spent)}")


if __name__ == "__main__":
    main()
