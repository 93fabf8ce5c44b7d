#!/usr/bin/python3
"""MLLP listener that ACKs every message (python3-hl7's hl7.mllp server): AA, or AE when the
control id starts with ERR. Usage: listener.py PORT"""
import asyncio
import signal
import sys

import hl7
from hl7.mllp import start_hl7_server


async def handle(reader, writer):
    try:
        while not writer.is_closing():
            msg = await reader.readmessage()
            cid = str(msg.segment("MSH")(10))
            ack = msg.create_ack(ack_code="AE" if cid.startswith("ERR") else "AA",
                                 message_id="ACK" + cid)
            writer.writemessage(ack)
            await writer.drain()
    except asyncio.IncompleteReadError:
        if not writer.is_closing():
            writer.close()
            await writer.wait_closed()


async def main():
    server = await start_hl7_server(handle, "127.0.0.1", int(sys.argv[1]))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


asyncio.run(main())
