"""A DNS server and a one-file S3 bucket on 127.0.0.1, for e2e/image/test.sh.

test.sh runs this inside a network namespace of its own (unshare --net), so port 53 is free
and nothing leaves the namespace. The DNS server knows exactly one name, `store.ciclo.test`
(A 127.0.0.1); every other name is NXDOMAIN, so a name that resolves anyway came from
/etc/hosts. The bucket `data` holds `iris/a.csv`; every request's Host header is appended
to the log file, so the test sees which name a client used to reach it.

    python3 loopback_services.py LOG_FILE HTTP_PORT
"""

import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DNS_NAMES = {"store.ciclo.test": bytes([127, 0, 0, 1])}
OBJECT_KEY = "iris/a.csv"
OBJECT_BODY = b"a,b\n1,2\n"


def dns_answer(query: bytes) -> bytes:
    """The answer to one query: A for a known name, NODATA for its other types, else NXDOMAIN."""
    labels, i = [], 12
    while query[i] != 0:
        labels.append(query[i + 1 : i + 1 + query[i]].decode("ascii").lower())
        i += 1 + query[i]
    question_end = i + 5
    qtype = int.from_bytes(query[i + 1 : i + 3], "big")
    address = DNS_NAMES.get(".".join(labels))
    rcode = 0 if address else 3
    answers = b""
    if address and qtype == 1:
        # Name by pointer to the question, type A, class IN, TTL 5 s, 4 bytes of address.
        answers = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x05\x00\x04" + address
    header = query[:2] + bytes([0x81, 0x80 | rcode]) + b"\x00\x01"
    header += (1 if answers else 0).to_bytes(2, "big") + b"\x00\x00\x00\x00"
    return header + query[12:question_end] + answers


def serve_dns() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 53))
    while True:
        query, peer = sock.recvfrom(512)
        sock.sendto(dns_answer(query), peer)


class Bucket(BaseHTTPRequestHandler):
    """Just enough S3 (path style) for a listing and a read of one object."""

    def do_GET(self) -> None:
        with open(LOG, "a", encoding="utf-8") as log:
            log.write(f"{self.headers.get('Host')} {self.path}\n")
        if self.path.startswith("/data?") and "list-type=2" in self.path:
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>'
                "<ListBucketResult><Name>data</Name><IsTruncated>false</IsTruncated>"
                f"<Contents><Key>{OBJECT_KEY}</Key><Size>{len(OBJECT_BODY)}</Size>"
                "<LastModified>2026-01-01T00:00:00.000Z</LastModified>"
                '<ETag>"1"</ETag></Contents></ListBucketResult>'
            ).encode()
            content_type = "application/xml"
        elif self.path.split("?")[0] == f"/data/{OBJECT_KEY}":
            body, content_type = OBJECT_BODY, "text/csv"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Last-Modified", "Thu, 01 Jan 2026 00:00:00 GMT")
        self.send_header("ETag", '"1"')
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


if __name__ == "__main__":
    LOG, port = sys.argv[1], int(sys.argv[2])
    threading.Thread(target=serve_dns, daemon=True).start()
    ThreadingHTTPServer(("127.0.0.1", port), Bucket).serve_forever()
