"""moto's server on 127.0.0.1 for the integration tests (DynamoDB and STS semantics).

Prints `listening on 127.0.0.1:PORT` once it accepts connections, then serves until its stdin closes: the test
process holds the other end, so the server goes away with the tests even when they are killed.
"""
import logging
import socket
import sys

from moto.server import ThreadedMotoServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request in the test output
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    sys.stdin.read()  # returns at EOF: the parent is gone
    server.stop()


if __name__ == "__main__":
    main()
