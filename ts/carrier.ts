// Carrying QUIC datagrams over a byte stream, for networks that block UDP and for runtimes
// without UDP: the same engine, handshake, certificate checks, delivery and ordering, on
// another carrier. The stream is a TCP connection (Node) or a WebSocket's binary messages
// (browsers, to the same server port); on it each datagram travels as a frame: its length
// (2 bytes, big-endian), then its bytes. The engine knows each tunnel by an address of its
// own in 100::/64 (the discard-only prefix of RFC 6666, which no real peer has;
// crates/quicwire-node/src/driver.rs hands what it sends there to this instead of UDP).

import { concat } from './bytes.js';
import { QuicwireError } from './errors.js';
import { unref } from './platform.js';

/** A byte stream as the platform has it: TCP (node:net) or a WebSocket. */
export interface ByteStream {
  /** The IP address of the other end, where the platform knows it. */
  readonly remote?: string | undefined;
  write(data: Uint8Array): void;
  /** Bytes written and not yet sent. */
  readonly queued: number;
  /** Closes it once what is queued has gone. */
  close(): void;
}

/** Where the platform opens streams: TCP in Node (which also takes WebSockets when it
 *  listens), WebSockets in browsers. */
export interface StreamNetwork {
  /** A stream to `host:port` (a name or an IP address). */
  connect(host: string, port: number, events: StreamEvents): ByteStream;
  /** Listens on TCP `host:port`; `accept` takes each stream and says what to do with it.
   *  `tls`: the server's certificate, for WebSockets over TLS (`wss://`, from pages served
   *  over https). */
  listen(
    host: string,
    port: number,
    tls: { cert: string; key: string },
    accept: (stream: ByteStream) => StreamEvents,
  ): Promise<{ close(): void }>;
}

export interface StreamEvents {
  data(chunk: Uint8Array): void;
  /** Closed, by either side or by an error. */
  closed(): void;
}

/** Frames a tunnel keeps queued before it drops datagrams: QUIC sees the loss and slows,
 *  instead of a queue growing without bound. */
const HIGH_WATER = 4 << 20;

let nextTunnel = 0;

/** A dialed tunnel's address: 100::/64, one address per tunnel in the process. */
function tunnelAddress(): string {
  const n = nextTunnel++;
  return `[100::${(1 + Math.floor(n / 0x10000)).toString(16)}:${(n % 0x10000).toString(16)}]:1`;
}

/** The low half of an accepted tunnel's address: the client's IPv4 address whole (as
 *  ::ffff:a.b.c.d has it), or its IPv6 address's /64, so that the server's per-IP limit
 *  counts a client's tunnels together. */
function clientHalf(ip: string): number[] {
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(ip);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    return [0, 0xffff, (a << 8) | b, (c << 8) | d];
  }
  const [head = '', tail] = ip.split('::');
  const groups = (part: string | undefined) =>
    part ? part.split(':').map((g) => Number.parseInt(g, 16) || 0) : [];
  const high = groups(head);
  const low = tail === undefined ? [] : groups(tail);
  const all = [...high, ...new Array(8 - high.length - low.length).fill(0), ...low];
  return all.slice(0, 4);
}

export function isTunnel(addr: string): boolean {
  return addr.startsWith('[100::');
}

/** How long an accepted tunnel may go without carrying a QUIC connection (a handshake takes
 *  well under this): past it, it is closed, so idle or garbage streams cannot pile up. */
export const UNBOUND_TUNNEL_MS = 10_000;

class Tunnel {
  stream: ByteStream | undefined;
  /** Bytes of a frame not complete yet. */
  partial: Uint8Array | undefined;
  /** An accepted tunnel's deadline to carry a connection (`bound` clears it). */
  deadline: ReturnType<typeof setTimeout> | undefined;
  /** Datagrams of this task, written together after it (`StreamCarrier.send`). */
  waiting: Uint8Array[] = [];
  waitingBytes = 0;

  constructor(
    readonly addr: string,
    readonly open: (() => ByteStream) | undefined,
  ) {}
}

/** One engine's stream tunnels: those it dials (a client) and those it accepts (a server). */
export class StreamCarrier {
  readonly #tunnels = new Map<string, Tunnel>();
  /** Per client address (accepted tunnels): the port its next tunnel tries. */
  readonly #ports = new Map<string, number>();
  #listener: { close(): void } | undefined;
  #closed = false;

  constructor(
    readonly network: StreamNetwork | undefined,
    /** Datagrams that came in: back to back, `lens[i]` bytes each, from `addrs[i]`. */
    readonly deliver: (data: Uint8Array, lens: Uint32Array, addrs: string[]) => void,
    /** A tunnel closed (or failed to open) without our asking: its connection is cut off. */
    readonly lost: (addr: string) => void,
  ) {}

  #network(): StreamNetwork {
    if (!this.network) {
      throw new QuicwireError('ERR_INVALID_ARGUMENT', 'this runtime has no streams to carry QUIC over');
    }
    return this.network;
  }

  /** An address for a tunnel to `host:port`, opened when the engine first sends there
   *  (a pooled connection reused instead never opens it: `release`). */
  reserve(host: string, port: number): string {
    const network = this.#network();
    const addr = tunnelAddress();
    const tunnel: Tunnel = new Tunnel(addr, () => network.connect(host, port, this.#events(tunnel)));
    this.#tunnels.set(addr, tunnel);
    return addr;
  }

  release(addr: string): void {
    const tunnel = this.#tunnels.get(addr);
    if (tunnel && !tunnel.stream) this.#tunnels.delete(addr);
  }

  /** Accepts tunnels on TCP `host:port`. */
  async listen(host: string, port: number, tls: { cert: string; key: string }): Promise<void> {
    this.#listener = await this.#network().listen(host, port, tls, (stream) => {
      const tunnel = new Tunnel(this.#acceptedAddress(stream.remote ?? ''), undefined);
      tunnel.stream = stream;
      tunnel.deadline = setTimeout(() => this.end(tunnel.addr), UNBOUND_TUNNEL_MS);
      unref(tunnel.deadline);
      this.#tunnels.set(tunnel.addr, tunnel);
      return this.#events(tunnel);
    });
  }

  /** An accepted tunnel carries a connection now: it lives as long as that does. */
  bound(addr: string): void {
    const tunnel = this.#tunnels.get(addr);
    clearTimeout(tunnel?.deadline);
  }

  /** An accepted tunnel's address: the client's (see `clientHalf`), and a port none of its
   *  tunnels has. The engine prints addresses canonically, and so does URL. */
  #acceptedAddress(ip: string): string {
    const host = new URL(
      `http://[100:0:0:0:${clientHalf(ip)
        .map((g) => g.toString(16))
        .join(':')}]/`,
    ).hostname;
    for (let tries = 0; tries < 0xffff; tries++) {
      const port = this.#ports.get(host) ?? 1;
      this.#ports.set(host, port === 0xffff ? 1 : port + 1);
      const addr = `${host}:${port}`;
      if (!this.#tunnels.has(addr)) return addr;
    }
    return tunnelAddress(); // 65,535 tunnels from one address: it stands alone
  }

  /** One datagram into its tunnel (none, or too much queued: dropped, as UDP would). The
   *  frames of one task go in one write: over a WebSocket each write is a message, which a
   *  browser moves between its processes and a page gets as an event, one per QUIC packet
   *  costing more than the packets (a message may hold several frames, PROTOCOL.md 1a). */
  send(addr: string, datagram: Uint8Array): void {
    const tunnel = this.#tunnels.get(addr);
    if (!tunnel || this.#closed) return;
    tunnel.stream ??= tunnel.open?.();
    if (!tunnel.stream || tunnel.stream.queued + tunnel.waitingBytes > HIGH_WATER) return;
    if (tunnel.waiting.length === 0) queueMicrotask(() => this.#flush(tunnel));
    tunnel.waiting.push(datagram);
    tunnel.waitingBytes += 2 + datagram.length;
  }

  /** Writes a tunnel's frames of this task, length-prefixed, back to back. */
  #flush(tunnel: Tunnel): void {
    if (tunnel.waiting.length === 0) return;
    const frames = new Uint8Array(tunnel.waitingBytes);
    let at = 0;
    for (const datagram of tunnel.waiting) {
      frames[at] = datagram.length >> 8;
      frames[at + 1] = datagram.length & 0xff;
      frames.set(datagram, at + 2);
      at += 2 + datagram.length;
    }
    tunnel.waiting = [];
    tunnel.waitingBytes = 0;
    if (this.#tunnels.get(tunnel.addr) === tunnel) tunnel.stream?.write(frames);
  }

  /** Closes the tunnel of a connection that ended (after what is queued on it). */
  end(addr: string): void {
    const tunnel = this.#tunnels.get(addr);
    if (tunnel) this.#flush(tunnel); // a CONNECTION_CLOSE of this task goes first
    clearTimeout(tunnel?.deadline);
    tunnel?.stream?.close();
    this.#tunnels.delete(addr);
  }

  /** Stops listening and closes every tunnel. */
  closeAll(): void {
    this.#closed = true;
    this.#listener?.close();
    for (const tunnel of this.#tunnels.values()) {
      this.#flush(tunnel);
      clearTimeout(tunnel.deadline);
      tunnel.stream?.close();
    }
    this.#tunnels.clear();
  }

  #events(tunnel: Tunnel): StreamEvents {
    return {
      data: (chunk) => this.#arrived(tunnel, chunk),
      closed: () => {
        // Not one we closed ourselves (`end`, `closeAll`: it is gone from the table then).
        if (this.#tunnels.get(tunnel.addr) !== tunnel) return;
        clearTimeout(tunnel.deadline);
        this.#tunnels.delete(tunnel.addr);
        this.lost(tunnel.addr);
      },
    };
  }

  /** Whole frames to the engine in one call; a partial one waits for the rest. */
  #arrived(tunnel: Tunnel, chunk: Uint8Array): void {
    let bytes = chunk;
    if (tunnel.partial) {
      bytes = new Uint8Array(tunnel.partial.length + chunk.length);
      bytes.set(tunnel.partial);
      bytes.set(chunk, tunnel.partial.length);
      tunnel.partial = undefined;
    }
    const lens: number[] = [];
    let at = 0;
    let end = 0;
    const parts: Uint8Array[] = [];
    while (at + 2 <= bytes.length) {
      const len = ((bytes[at] as number) << 8) | (bytes[at + 1] as number);
      if (at + 2 + len > bytes.length) break;
      parts.push(bytes.subarray(at + 2, at + 2 + len));
      lens.push(len);
      at += 2 + len;
      end = at;
    }
    if (end < bytes.length) tunnel.partial = bytes.slice(end);
    if (lens.length === 0) return;
    const data = parts.length === 1 ? (parts[0] as Uint8Array) : concat(parts);
    this.deliver(
      data,
      Uint32Array.from(lens),
      lens.map(() => tunnel.addr),
    );
  }
}
