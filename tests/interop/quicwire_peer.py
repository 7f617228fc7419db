"""A quicwire v1 peer on aioquic, written from docs/PROTOCOL.md alone (no quicwire code).

tests/aioquic.test.ts runs it against quicwire on both backends, each way:

  python quicwire_peer.py client PORT CA_PEM   # dials a quicwire server, runs the checks
  python quicwire_peer.py server CERT KEY      # serves a quicwire client; prints its port

Each mode prints one JSON line per result (``{"check": name, "ok": bool, ...}``) and ends
with ``{"done": true}``.
"""

import asyncio
import json
import ssl
import sys

from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import (
    ConnectionTerminated,
    HandshakeCompleted,
    StopSendingReceived,
    StreamDataReceived,
    StreamReset,
)

ALPN = "quicwire/1"
VERSION = 1
RAW = 3
MAX_MESSAGE_SIZE = 1 << 20
HELLO, MESSAGE, REQUEST, RESPONSE, ERROR, ACK, GOAWAY = 1, 3, 4, 5, 6, 7, 8
ERR_REMOTE = 14


def report(check, ok, **detail):
    print(json.dumps({"check": check, "ok": bool(ok), **detail}), flush=True)


# Section 2: varints and frames.


def varint(v):
    if v < 1 << 6:
        return bytes([v])
    if v < 1 << 14:
        return (0x4000 | v).to_bytes(2, "big")
    if v < 1 << 30:
        return (0x8000_0000 | v).to_bytes(4, "big")
    return (0xC000_0000_0000_0000 | v).to_bytes(8, "big")


def read_varint(buf, at):
    """(value, next offset), or None when buf does not hold all of it yet."""
    if at >= len(buf):
        return None
    size = 1 << (buf[at] >> 6)
    if at + size > len(buf):
        return None
    value = buf[at] & 0x3F
    for b in buf[at + 1 : at + size]:
        value = (value << 8) | b
    return value, at + size


def frame(kind, payload=b""):
    return varint(1 + len(payload)) + bytes([kind]) + payload


def hello():
    return frame(HELLO, varint(VERSION) + varint(MAX_MESSAGE_SIZE) + bytes([1, RAW]))


class FrameError(Exception):
    """A frame the receiver rejects; `code` is the STOP_SENDING code (section 8)."""

    def __init__(self, code, text):
        super().__init__(text)
        self.code = code


class Frames:
    """One stream's frames as its bytes arrive."""

    def __init__(self):
        self.buf = b""

    def push(self, data):
        self.buf += data
        frames = []
        while True:
            head = read_varint(self.buf, 0)
            if head is None:
                return frames
            length, at = head
            if length > MAX_MESSAGE_SIZE + 9 and length > 1088:
                raise FrameError(2, f"frame of {length} bytes is over the limit")
            if length == 0:
                raise FrameError(1, "empty frame")
            if at + length > len(self.buf):
                return frames
            frames.append((self.buf[at], self.buf[at + 1 : at + length]))
            self.buf = self.buf[at + length :]


def parse_id(payload):
    value, at = read_varint(payload, 0)
    return value, payload[at:]


def parse_error(payload):
    rid, rest = parse_id(payload)
    code, at = read_varint(rest, 0)
    return rid, code, rest[at:].decode("utf-8", "replace")


class Peer(QuicConnectionProtocol):
    """The quicwire session (sections 3-7) on one aioquic connection."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.is_client = self._quic.configuration.is_client
        self.readers = {}
        self.peer_control = None
        self.peer_hello = asyncio.get_event_loop().create_future()
        self.control = None
        self.channel = None
        self.sent = 0
        self.acked = 0
        self.ack_waiters = []
        self.delivered = {}  # peer channel stream -> messages handed over
        self.inbox = asyncio.Queue()
        self.answers = {}  # our request stream -> future of (kind, payload)
        self.stopped = {}  # stream -> STOP_SENDING code the peer sent
        self.resets = {}  # stream -> RESET_STREAM code
        self.goaway = asyncio.get_event_loop().create_future()
        self.closed = asyncio.get_event_loop().create_future()
        self.requests_served = 0
        self.on_request = None  # async (body) -> (kind, payload)

    def start(self):
        """Our control stream and HELLO (section 4)."""
        if self.control is None:
            self.control = self._quic.get_next_available_stream_id(is_unidirectional=True)
            self._quic.send_stream_data(self.control, hello())
            self.transmit()

    def send_messages(self, bodies):
        """MESSAGE frames on our channel (section 5); resolves once the peer ACKed them."""
        if self.channel is None:
            self.channel = self._quic.get_next_available_stream_id(is_unidirectional=True)
        self._quic.send_stream_data(self.channel, b"".join(frame(MESSAGE, b) for b in bodies))
        self.transmit()
        self.sent += len(bodies)
        return self.wait_acked(self.sent)

    def wait_acked(self, count):
        waiter = asyncio.get_event_loop().create_future()
        self.ack_waiters.append((count, waiter))
        self.check_acks()
        return waiter

    def check_acks(self):
        for count, waiter in list(self.ack_waiters):
            if self.acked >= count and not waiter.done():
                waiter.set_result(self.acked)

    async def request(self, body, rid=1):
        """A request on a fresh bidi stream (section 6); its answer frame."""
        stream = self._quic.get_next_available_stream_id()
        answer = asyncio.get_event_loop().create_future()
        self.answers[stream] = answer
        self._quic.send_stream_data(stream, frame(REQUEST, varint(rid) + body), end_stream=True)
        self.transmit()
        return await answer

    def raw_uni(self, data):
        """Writes `data` on a new unidirectional stream: for hostile frames."""
        stream = self._quic.get_next_available_stream_id(is_unidirectional=True)
        self._quic.send_stream_data(stream, data)
        self.transmit()
        return stream

    def raw_bidi(self, data):
        stream = self._quic.get_next_available_stream_id()
        answer = asyncio.get_event_loop().create_future()
        self.answers[stream] = answer
        self._quic.send_stream_data(stream, data)
        self.transmit()
        return stream, answer

    def send_goaway(self):
        self._quic.send_stream_data(self.control, frame(GOAWAY))
        self.transmit()

    def quic_event_received(self, event):
        if isinstance(event, HandshakeCompleted):
            self.start()
        elif isinstance(event, StreamDataReceived):
            self.on_data(event.stream_id, event.data, event.end_stream)
        elif isinstance(event, StopSendingReceived):
            self.stopped[event.stream_id] = event.error_code
        elif isinstance(event, StreamReset):
            self.resets[event.stream_id] = event.error_code
            answer = self.answers.pop(event.stream_id, None)
            if answer and not answer.done():
                answer.set_result(("reset", event.error_code))
        elif isinstance(event, ConnectionTerminated):
            if not self.closed.done():
                self.closed.set_result((event.error_code, event.reason_phrase))

    def ours(self, stream):
        return (stream & 1) == (0 if self.is_client else 1)

    def on_data(self, stream, data, end):
        uni = stream & 2
        reader = self.readers.setdefault(stream, Frames())
        try:
            frames = reader.push(data)
        except FrameError as e:
            self._quic.stop_stream(stream, e.code)
            self.transmit()
            return
        if uni:
            if self.peer_control is None:
                self.peer_control = stream  # the peer's first uni stream
            if stream == self.peer_control:
                self.on_control(frames)
            else:
                self.on_channel(stream, frames)
        elif self.ours(stream):
            for kind, payload in frames:
                answer = self.answers.pop(stream, None)
                if answer and not answer.done():
                    answer.set_result((kind, payload))
        else:
            for kind, payload in frames:
                if kind == REQUEST:
                    asyncio.ensure_future(self.answer(stream, payload))

    def on_control(self, frames):
        for kind, payload in frames:
            if kind == HELLO and not self.peer_hello.done():
                version, at = read_varint(payload, 0)
                limit, at = read_varint(payload, at)
                n = payload[at]
                encodings = list(payload[at + 1 : at + 1 + n])
                self.peer_hello.set_result({"version": version, "max": limit, "encodings": encodings})
            elif kind == ACK:
                stream, at = read_varint(payload, 0)
                count, _ = read_varint(payload, at)
                if self.channel is not None and stream == self.channel >> 2 and count > self.acked:
                    self.acked = count
                    self.check_acks()
            elif kind == GOAWAY and not self.goaway.done():
                self.goaway.set_result(True)

    def on_channel(self, stream, frames):
        got = 0
        for kind, payload in frames:
            if kind == MESSAGE:
                self.inbox.put_nowait(payload)
                got += 1
        if got:
            # Handed to the application (the inbox): ACK them (section 5).
            count = self.delivered.get(stream, 0) + got
            self.delivered[stream] = count
            self._quic.send_stream_data(self.control, frame(ACK, varint(stream >> 2) + varint(count)))
            self.transmit()

    async def answer(self, stream, payload):
        rid, body = parse_id(payload)
        self.requests_served += 1
        kind, out = await self.on_request(body)
        self._quic.send_stream_data(stream, frame(kind, varint(rid) + out), end_stream=True)
        self.transmit()


async def wait(future, seconds=10):
    return await asyncio.wait_for(asyncio.shield(future), seconds)


async def run_client(port, ca):
    config = QuicConfiguration(is_client=True, alpn_protocols=[ALPN], server_name="localhost")
    config.verify_mode = ssl.CERT_REQUIRED
    config.load_verify_locations(ca)
    async with connect("127.0.0.1", port, configuration=config, create_protocol=Peer) as peer:
        peer.on_request = client_handler
        theirs = await wait(peer.peer_hello)
        report("hello", theirs["version"] == VERSION and RAW in theirs["encodings"], hello=theirs)

        acked = await wait(peer.send_messages([b"m%d" % i for i in range(100)]))
        report("messages acked", acked == 100, acked=acked)

        kind, payload = await wait(peer.request(b"ping", rid=7))
        rid, body = parse_id(payload)
        report("request", kind == RESPONSE and rid == 7 and body == b"ping", body=body.decode())

        kind, payload = await wait(peer.request(b"fail", rid=8))
        rid, code, text = parse_error(payload)
        report("remote error", kind == ERROR and rid == 8 and code == ERR_REMOTE, code=code, text=text)

        answers = await wait(
            asyncio.gather(*(peer.request(b"n%d" % i, rid=100 + i) for i in range(50)))
        )
        ok = all(k == RESPONSE and parse_id(p) == (100 + i, b"n%d" % i) for i, (k, p) in enumerate(answers))
        report("50 requests at once", ok)

        # Hostile frames (section 8): each costs only its stream.
        garbage = peer.raw_uni(bytes([0x03, 0x77, 0x00, 0x00]))
        huge = peer.raw_uni(varint(4 << 30) + bytes([MESSAGE, 0, 0]))
        stream, answer = peer.raw_bidi(varint(4 << 30) + bytes([REQUEST, 0, 0]))
        kind, payload = await wait(answer)
        rid, code, text = parse_error(payload)
        report("oversized request answered", kind == ERROR and rid == 0 and code == 6, code=code, text=text)
        for _ in range(100):
            if garbage in peer.stopped and huge in peer.stopped:
                break
            await asyncio.sleep(0.02)
        report(
            "hostile channels stopped",
            peer.stopped.get(garbage) == 1 and peer.stopped.get(huge) == 2,
            garbage=peer.stopped.get(garbage),
            huge=peer.stopped.get(huge),
        )
        kind, payload = await wait(peer.request(b"still here", rid=9))
        report("connection survives", kind == RESPONSE and parse_id(payload)[1] == b"still here")

        # The server sends us messages and a request once we ask it to ("push").
        await wait(peer.request(b"push", rid=10))
        got = [await wait(peer.inbox.get()) for _ in range(10)]
        report("messages from the server", got == [b"s%d" % i for i in range(10)])
        for _ in range(100):
            if peer.requests_served > 0:
                break
            await asyncio.sleep(0.02)
        report("request from the server answered", peer.requests_served == 1)

        # A graceful close: GOAWAY first, then the close with SHUTDOWN (5).
        await wait(peer.request(b"close", rid=11))
        await wait(peer.goaway)
        report("goaway", True)
        code, reason = await wait(peer.closed)
        report("closed", code == 5, code=code, reason=reason)
    print(json.dumps({"done": True}), flush=True)


async def client_handler(body):
    return RESPONSE, b"client:" + body


async def run_server(cert, key):
    config = QuicConfiguration(is_client=False, alpn_protocols=[ALPN])
    config.load_cert_chain(cert, key)
    done = asyncio.get_event_loop().create_future()
    peers = []

    def create(*args, **kwargs):
        peer = Peer(*args, **kwargs)
        peer.on_request = lambda body: server_handler(peer, body, done)
        peers.append(peer)
        return peer

    server = await serve("127.0.0.1", 0, configuration=config, create_protocol=create)
    port = server._transport.get_extra_info("sockname")[1]
    print(json.dumps({"port": port}), flush=True)
    await asyncio.wait_for(done, 60)
    server.close()
    print(json.dumps({"done": True}), flush=True)


async def server_handler(peer, body, done):
    """What the quicwire client asks for: echo, a failure, or a step of the test."""
    if body == b"fail":
        return ERROR, varint(ERR_REMOTE) + b"handler failed"
    if body == b"hello?":
        # The server's HELLO went at once (section 4); the client's must have come.
        theirs = await wait(peer.peer_hello)
        return RESPONSE, json.dumps(theirs).encode()
    if body == b"push":
        # Ten messages to the client; answered once its application ACKed them.
        acked = await wait(peer.send_messages([b"s%d" % i for i in range(10)]))
        return RESPONSE, b"acked %d" % acked
    if body == b"hostile":
        garbage = peer.raw_uni(bytes([0x03, 0x77, 0x00, 0x00]))
        huge = peer.raw_uni(varint(4 << 30) + bytes([MESSAGE, 0, 0]))
        for _ in range(100):
            if garbage in peer.stopped and huge in peer.stopped:
                break
            await asyncio.sleep(0.02)
        seen = {"garbage": peer.stopped.get(garbage), "huge": peer.stopped.get(huge)}
        return RESPONSE, json.dumps(seen).encode()
    if body == b"messages?":
        return RESPONSE, json.dumps({"received": peer.inbox.qsize()}).encode()
    if body == b"goaway":
        peer.send_goaway()
        asyncio.get_event_loop().call_later(0.5, lambda: done.done() or done.set_result(True))
        return RESPONSE, b"going away"
    return RESPONSE, body


def main():
    mode = sys.argv[1]
    if mode == "client":
        asyncio.run(run_client(int(sys.argv[2]), sys.argv[3]))
    elif mode == "server":
        asyncio.run(run_server(sys.argv[2], sys.argv[3]))
    else:
        raise SystemExit(f"usage: {sys.argv[0]} client PORT CA | server CERT KEY")


if __name__ == "__main__":
    main()
