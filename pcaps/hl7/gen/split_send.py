#!/usr/bin/python3
"""Sends one MLLP-framed message in 16-byte TCP segments (TCP_NODELAY, a pause between writes),
as a slow or chatty sender does, then reads the ACK. Usage: split_send.py PORT FILE"""
import socket
import sys
import time

data = b"\x0b" + open(sys.argv[2], "rb").read() + b"\x1c\r"
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
for i in range(0, len(data), 16):
    s.sendall(data[i:i + 16])
    time.sleep(0.005)
ack = b""
while not ack.endswith(b"\x1c\r"):
    chunk = s.recv(4096)
    if not chunk:
        break
    ack += chunk
s.close()
