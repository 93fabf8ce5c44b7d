#!/usr/bin/python3
"""HTTP endpoint for HL7 v2 over HTTP: POST an ER7 message, get the ACK built by python3-hl7 in
the response body (x-application/hl7-v2+er7). A request body in chunks, or compressed with gzip or
deflate (Content-Encoding), is decoded; the ACK is sent gzip-compressed to a client that accepts
it (Accept-Encoding). Usage: http_server.py PORT"""
import gzip
import sys
import zlib
from http.server import BaseHTTPRequestHandler, HTTPServer

import hl7


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def do_POST(self):
        body = self.read_body()
        coding = self.headers.get("Content-Encoding", "").strip().lower()
        if coding in ("gzip", "x-gzip"):
            body = gzip.decompress(body)
        elif coding == "deflate":
            body = zlib.decompress(body)
        msg = hl7.parse(body.decode("utf-8"))
        cid = str(msg.segment("MSH")(10))
        ack = str(msg.create_ack(ack_code="AA", message_id="ACK" + cid)).encode() + b"\r"
        self.send_response(200)
        self.send_header("Content-Type", "x-application/hl7-v2+er7; charset=utf-8")
        if "gzip" in self.headers.get("Accept-Encoding", ""):
            ack = gzip.compress(ack, mtime=0)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(ack)))
        self.end_headers()
        self.wfile.write(ack)

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
