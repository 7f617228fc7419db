// The Node.js platform (also Deno and Bun through their node: modules): UDP sockets from
// node:dgram (for the wasm engine), TCP from node:net and WebSockets from `ws` (for QUIC
// where UDP cannot go, ts/carrier.ts), the napi addon (ts/native.ts), the .wasm from disk.

import { createSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createRequire } from 'node:module';
import { createServer, type Socket, connect as tcpConnect } from 'node:net';
import { Duplex } from 'node:stream';
import { createSecureContext, type SecureContext, TLSSocket } from 'node:tls';
import { type WebSocket, WebSocketServer } from 'ws';
import { type ByteStream, type StreamEvents, type StreamNetwork, UNBOUND_TUNNEL_MS } from './carrier.js';
import { QuicwireError } from './errors.js';
import { loadNative } from './native.js';
import type { DatagramNetwork, DatagramSocket, Platform, WasmInput } from './platform.js';
import type { OpenTelemetryApi } from './tracing.js';

const udp: DatagramNetwork = {
  async resolve(host) {
    try {
      const found = await lookup(host);
      return { address: found.address, family: found.family === 6 ? 6 : 4 };
    } catch (err) {
      throw new QuicwireError('ERR_IO', `cannot resolve ${host}: ${String(err)}`, { cause: err });
    }
  },

  async bind(family, host, port, receive): Promise<DatagramSocket> {
    // Large kernel buffers, as on the native engine (quicwire_core::quic::SOCKET_BUFFER): bursts
    // overflowing the default drop packets that QUIC must then wait to resend.
    const socket = createSocket({
      type: family === 6 ? 'udp6' : 'udp4',
      ipv6Only: family === 6,
      recvBufferSize: 8 << 20,
      sendBufferSize: 8 << 20,
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', (err) =>
        reject(
          new QuicwireError('ERR_IO', `cannot bind UDP ${host ?? 'any'}:${port}: ${err.message}`, {
            cause: err,
          }),
        ),
      );
      socket.bind(port, host ?? (family === 6 ? '::' : '0.0.0.0'), () => resolve());
    });
    // A send error (say, ICMP unreachable) is QUIC's to handle through loss and timeouts.
    socket.on('error', () => {});
    // Datagrams mostly come from the same peer: format its address once, not per datagram.
    let fromAddress = '';
    let fromPort = -1;
    let from = '';
    socket.on('message', (msg, rinfo) => {
      if (rinfo.port !== fromPort || rinfo.address !== fromAddress) {
        fromAddress = rinfo.address;
        fromPort = rinfo.port;
        from = rinfo.family === 'IPv6' ? `[${fromAddress}]:${fromPort}` : `${fromAddress}:${fromPort}`;
      }
      receive(msg, from);
    });
    // Open connections keep the process alive through the hub, not through sockets.
    socket.unref();
    let lastTo = '';
    let toHost = '';
    let toPort = 0;
    return {
      port: socket.address().port,
      send(data, to) {
        // Likewise, parse "ip:port" / "[ip]:port" once per peer.
        if (to !== lastTo) {
          const i = to.lastIndexOf(':');
          lastTo = to;
          toHost = to.slice(0, i).replace(/^\[|\]$/g, '');
          toPort = Number(to.slice(i + 1));
        }
        socket.send(data, toPort, toHost);
      },
      close() {
        socket.close();
      },
    };
  },
};

/** A TCP socket as a tunnel's stream: no Nagle delay (each frame is a packet), and, like the
 *  UDP sockets, it does not keep the process alive. */
function byteStream(socket: Socket): ByteStream {
  socket.setNoDelay(true);
  socket.unref();
  // A reset or refusal closes it: QUIC then times out, as on a lost path.
  socket.on('error', () => {});
  return {
    remote: socket.remoteAddress,
    write: (data) => void socket.write(data),
    get queued() {
      return socket.writableLength;
    },
    close: () => socket.end(),
  };
}

function deliver(socket: Socket, events: StreamEvents): void {
  socket.on('data', (chunk) => events.data(chunk));
  socket.on('close', () => events.closed());
}

/** A WebSocket (from a browser) as a tunnel's stream: its binary messages carry the same
 *  frames as TCP does. */
function webSocketStream(
  ws: WebSocket,
  remote: string | undefined,
  accept: (stream: ByteStream) => StreamEvents,
): void {
  const events = accept({
    remote,
    write: (data) => ws.send(data),
    get queued() {
      return ws.bufferedAmount;
    },
    close: () => ws.close(),
  });
  ws.on('message', (data: Buffer) => events.data(data));
  ws.on('close', () => events.closed());
  ws.on('error', () => {});
}

/** What a TCP stream to a server's port carries, told by its first bytes. */
type Arrival = 'websocket' | 'tls' | 'tunnel';

/** Hands `socket` on once its first bytes tell a WebSocket upgrade ("GET "), TLS (a
 *  handshake record, 0x16: a WebSocket over TLS) and a tunnel (which starts with the length
 *  of a QUIC Initial) apart: with those bytes put back, and for TLS given as `first`. */
function sniff(socket: Socket, route: (arrival: Arrival, first: Buffer) => void): void {
  let seen = Buffer.alloc(0);
  // A stream that says nothing is not kept.
  socket.setTimeout(UNBOUND_TUNNEL_MS, () => socket.destroy());
  const first = (chunk: Buffer) => {
    seen = Buffer.concat([seen, chunk]);
    if (seen.length < 4) return;
    socket.setTimeout(0);
    socket.off('data', first);
    if (seen[0] === TLS_HANDSHAKE) {
      route('tls', seen);
      return;
    }
    socket.pause();
    socket.unshift(seen);
    route(seen.subarray(0, 4).toString('latin1') === 'GET ' ? 'websocket' : 'tunnel', seen);
    socket.resume();
  };
  socket.on('data', first);
  socket.on('error', () => {});
}

/** The first byte of a TLS handshake record. A tunnel's first two bytes are the length of
 *  a datagram with a QUIC Initial, 1,200 to 1,452 bytes (a tunnel's address is never a
 *  loopback one, which has larger datagrams), so its first byte is 4 or 5: never 0x16. */
const TLS_HANDSHAKE = 0x16;

/** `socket`, whose `first` bytes were read already, as the server side of a TLS session (a
 *  WebSocket over TLS under it). TLS goes through a stream that hands it `first` before
 *  the rest: on the socket itself it would read past them, from the socket's handle. */
function secureSocket(socket: Socket, first: Buffer, secureContext: SecureContext): TLSSocket {
  const replayed = new Duplex({
    read: () => void socket.resume(),
    write: (chunk, _encoding, done) => void socket.write(chunk, done),
    final: (done) => {
      socket.end();
      done();
    },
    destroy: (err, done) => {
      socket.destroy(err ?? undefined);
      done(err);
    },
  });
  // Like the other streams, it does not keep the process alive.
  socket.unref();
  replayed.push(first);
  socket.on('data', (chunk) => {
    if (!replayed.push(chunk)) socket.pause();
  });
  socket.on('end', () => replayed.push(null));
  socket.on('close', () => replayed.destroy());
  const secure = new TLSSocket(replayed, { isServer: true, secureContext });
  // A failed handshake closes it; the page sees its WebSocket fail.
  secure.on('error', () => secure.destroy());
  return secure;
}

const tcp: StreamNetwork = {
  connect(host, port, events) {
    const socket = tcpConnect({ host: host.replace(/^\[|\]$/g, ''), port });
    deliver(socket, events);
    return byteStream(socket);
  },
  async listen(host, port, tls, accept) {
    // Browsers come as WebSockets to the same port, over TLS from pages served over https:
    // an HTTP server of our own upgrades them.
    const web = createHttpServer();
    const secureContext = createSecureContext({ cert: tls.cert, key: tls.key });
    const upgrades = new WebSocketServer({ noServer: true, maxPayload: 1 << 20 });
    web.on('upgrade', (req, socket, head) => {
      (socket as Socket).unref();
      const remote = req.socket.remoteAddress;
      upgrades.handleUpgrade(req, socket, head, (ws) => webSocketStream(ws, remote, accept));
    });
    const server = createServer((socket) =>
      sniff(socket, (arrival, first) => {
        if (arrival === 'websocket') web.emit('connection', socket);
        else if (arrival === 'tls') web.emit('connection', secureSocket(socket, first, secureContext));
        else deliver(socket, accept(byteStream(socket)));
      }),
    );
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) =>
        reject(
          new QuicwireError('ERR_IO', `cannot listen on TCP ${host}:${port}: ${err.message}`, { cause: err }),
        ),
      );
      server.listen(port, host, () => resolve());
    });
    server.unref();
    return {
      close: () => {
        server.close();
        for (const ws of upgrades.clients) ws.terminate();
        upgrades.close();
      },
    };
  },
};

export const nodePlatform: Platform = {
  loadNative,
  network: udp,
  streams: tcp,
  async wasmSource(input: WasmInput | undefined) {
    if (input instanceof WebAssembly.Module || ArrayBuffer.isView(input) || input instanceof ArrayBuffer) {
      return input;
    }
    return readFile(input ?? new URL('../pkg/quicwire_wasm_bg.wasm', import.meta.url));
  },
  env: (name) => process.env[name],
  warn: (message, code) => process.emitWarning(message, { code }),
  openTelemetry() {
    try {
      return createRequire(import.meta.url)('@opentelemetry/api') as OpenTelemetryApi;
    } catch (err) {
      throw new QuicwireError(
        'ERR_INVALID_ARGUMENT',
        'tracing needs @opentelemetry/api: npm install @opentelemetry/api (and an OpenTelemetry SDK to record spans)',
        { cause: err },
      );
    }
  },
};
