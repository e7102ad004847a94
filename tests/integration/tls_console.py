#!/usr/bin/env python3
"""A VM's serial console over the daemon's TLS listener, with a stock client
(python3-websocket): wss:// checked against the CA file given, the bearer
token in the Authorization header. Types a line and waits for a string, or
reports the refusal the daemon answered with.

usage: tls_console.py wss://HOST:PORT/vms/NAME/console CAFILE TOKEN LINE EXPECTED
Prints "answered EXPECTED", or "refused STATUS" (the handshake failed: no
console byte can come); exits 0 either way, 1 when the answer did not come within 60 s."""
import ssl
import sys
import time

import websocket


def main():
    url, ca_file, token, line, expected = sys.argv[1:6]
    try:
        connection = websocket.create_connection(
            url, timeout=60, sslopt={"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": ca_file},
            header=["Authorization: Bearer " + token], subprotocols=["strata.console"])
    except websocket.WebSocketBadStatusException as refusal:
        print(f"refused {refusal.status_code}")
        return 0
    output = b""
    connection.send_binary(line.encode() + b"\n")
    deadline = time.monotonic() + 60
    while expected.encode() not in output and time.monotonic() < deadline:
        opcode, data = connection.recv_data()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
        output += data
    connection.close()
    if expected.encode() in output:
        print(f"answered {expected}")
        return 0
    print(f"no {expected} within 60 s; the console said: {output.decode(errors='replace')}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
