#!/usr/bin/python3
"""HTTP endpoint for HL7 v2 over HTTP: POST an ER7 message, get the ACK built by python3-hl7 in
the response body (x-application/hl7-v2+er7). Usage: http_server.py PORT"""
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

import hl7


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        msg = hl7.parse(body.decode("utf-8"))
        cid = str(msg.segment("MSH")(10))
        ack = str(msg.create_ack(ack_code="AA", message_id="ACK" + cid)).encode() + b"\r"
        self.send_response(200)
        self.send_header("Content-Type", "x-application/hl7-v2+er7; charset=utf-8")
        self.send_header("Content-Length", str(len(ack)))
        self.end_headers()
        self.wfile.write(ack)

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
