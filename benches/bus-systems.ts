// The message buses the bus benchmark compares, behind one small interface: quicwire's bus
// (QuicBus and Agent), NATS (nats-server and the `nats` client), and a WebSocket hub on
// `ws` written as a competent user would (binary frames, writes gathered per task). All
// three over TLS 1.3 on loopback, carrying the same payload bytes.
import { createServer } from 'node:https';
import { type NatsConnection, connect as natsConnect } from 'nats';
import WebSocket, { WebSocketServer } from 'ws';
import { Agent, QuicBus } from '../dist/index.js';
import { socketWriter } from './adapters/ws.js';
import { FrameReader, type FrameWriter } from './framing.js';
import type { Tls } from './types.js';

/** What an agent does with what reaches it. */
export interface AgentHandlers {
  /** A targeted or broadcast message. */
  message(payload: Uint8Array): void;
  /** A message for the queue group "work" (this agent is a member). */
  work(payload: Uint8Array): void;
}

/** One agent, `a<index>` on its bus. Requests are answered with their payload (echo). */
export interface BusAgent {
  send(to: number, payload: Uint8Array): void;
  request(to: number, payload: Uint8Array): Promise<Uint8Array>;
  broadcast(payload: Uint8Array): void;
  /** To one member of the queue group "work". */
  enqueue(payload: Uint8Array): void;
  close(): Promise<void>;
}

export interface BusSystem {
  name: string;
  describe: string;
  /** Connects agent `index`, in the queue group when `worker`; resolves once it receives. */
  connect(port: number, tls: Tls, index: number, worker: boolean, on: AgentHandlers): Promise<BusAgent>;
}

const noop = () => {};

/** quicwire's bus; `unconfirmed`: sends and publishes resolve once queued to go, as a NATS
 *  publish does, rather than once the receivers' handlers have them. */
function quicwireBus(unconfirmed: boolean): BusSystem {
  const how = { unconfirmed };
  return {
    name: unconfirmed ? 'quicwire-bus-unconfirmed' : 'quicwire-bus',
    describe: `quicwire: QuicBus and one Agent per agent (QUIC, TLS 1.3), msgpack bin payloads; sends ${
      unconfirmed ? 'unconfirmed, like a NATS publish' : 'confirmed: each resolves once its receivers have it'
    }`,
    async connect(port, tls, index, worker, on) {
      const agent = await Agent.connect(`127.0.0.1:${port}`, { ca: tls.cert, name: `a${index}` });
      agent.onMessage((m) => on.message(m as Uint8Array));
      agent.onRequest((m) => m);
      if (worker) await agent.subscribe('work', (m) => on.work(m as Uint8Array), { queue: 'workers' });
      return {
        // The application does not wait for each delivery: the window (in the driver) bounds
        // what is in flight, as for the other buses.
        send: (to, payload) => void agent.send(`a${to}`, payload, how).catch(noop),
        request: async (to, payload) => (await agent.request(`a${to}`, payload)) as Uint8Array,
        broadcast: (payload) => void agent.broadcast(payload, how).catch(noop),
        enqueue: (payload) => void agent.publish('work', payload, how).catch(noop),
        close: () => agent.close(),
      };
    },
  };
}

export const nats: BusSystem = {
  name: 'nats',
  describe: 'NATS: nats-server (Debian) with TLS, one `nats` client connection per agent',
  async connect(port, tls, index, worker, on) {
    const nc: NatsConnection = await natsConnect({
      servers: `tls://127.0.0.1:${port}`,
      tls: { ca: tls.cert },
      name: `a${index}`,
    });
    nc.subscribe(`a${index}`, {
      callback: (_err, msg) => {
        if (msg.reply) msg.respond(msg.data);
        else on.message(msg.data);
      },
    });
    nc.subscribe('all', { callback: (_err, msg) => on.message(msg.data) });
    if (worker) nc.subscribe('work', { queue: 'workers', callback: (_err, msg) => on.work(msg.data) });
    await nc.flush(); // the subscriptions are in place
    return {
      send: (to, payload) => nc.publish(`a${to}`, payload),
      request: async (to, payload) => (await nc.request(`a${to}`, payload, { timeout: 30_000 })).data,
      broadcast: (payload) => nc.publish('all', payload),
      enqueue: (payload) => nc.publish('work', payload),
      close: () => nc.close(),
    };
  },
};

// The WebSocket hub's frames (benches/framing.ts: u8 kind | u32 id | u32 length | payload).
const Hub = { Send: 1, Request: 2, Response: 3, Broadcast: 4, Work: 5 } as const;
const u32 = (n: number, rest: Uint8Array) => {
  const out = new Uint8Array(4 + rest.length);
  new DataView(out.buffer).setUint32(0, n);
  out.set(rest, 4);
  return out;
};
const readU32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint32(at);

/** The hub: agents by index (from the URL path), routing by frame kind. Send (id: the
 *  target) reaches the target with id = the sender; Request (id: the request, payload:
 *  target u32 + body) reaches the target as payload requester u32 + body, and its Response
 *  goes back the same way; Broadcast reaches every other agent; Work goes to the next member
 *  of the queue group in turn. */
export async function listenWsHub(tls: Tls): Promise<{ port: number; close(): Promise<void> }> {
  const https = createServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.3' });
  const wss = new WebSocketServer({ server: https, perMessageDeflate: false, maxPayload: 1 << 20 });
  const agents = new Map<number, FrameWriter>();
  const workers: FrameWriter[] = [];
  let turn = 0;
  wss.on('connection', (socket, req) => {
    const url = new URL(req.url ?? '/', 'wss://hub');
    const me = Number(url.pathname.slice(1));
    const writer = socketWriter(socket);
    agents.set(me, writer);
    if (url.searchParams.has('worker')) workers.push(writer);
    const reader = new FrameReader();
    socket.on('message', (data: Buffer) =>
      reader.push(data, (kind, id, bytes, start, end) => {
        const body = bytes.subarray(start, end);
        if (kind === Hub.Send) {
          agents.get(id)?.push(Hub.Send, me, body);
        } else if (kind === Hub.Request || kind === Hub.Response) {
          // The other end's index first, then the body: swapped for the receiver.
          agents.get(readU32(body, 0))?.push(kind, id, u32(me, body.subarray(4)));
        } else if (kind === Hub.Broadcast) {
          for (const [i, w] of agents) if (i !== me) w.push(Hub.Send, me, body);
        } else if (kind === Hub.Work && workers.length > 0) {
          (workers[turn++ % workers.length] as FrameWriter).push(Hub.Work, me, body);
        }
      }),
    );
    socket.on('close', () => {
      agents.delete(me);
      const at = workers.indexOf(writer);
      if (at >= 0) workers.splice(at, 1);
    });
    socket.send(new Uint8Array(0)); // ready
  });
  await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
  return {
    port: (https.address() as { port: number }).port,
    close: async () => {
      wss.close();
      await new Promise<void>((r) => https.close(() => r()));
    },
  };
}

export const wsHub: BusSystem = {
  name: 'ws-hub',
  describe: 'a WebSocket hub on ws over TLS 1.3 (wss), frames gathered per task',
  async connect(port, tls, index, worker, on) {
    const socket = new WebSocket(`wss://127.0.0.1:${port}/${index}${worker ? '?worker' : ''}`, {
      ca: tls.cert,
      perMessageDeflate: false,
      maxPayload: 1 << 20,
    });
    const writer = socketWriter(socket);
    const reader = new FrameReader();
    const pending = new Map<number, (b: Uint8Array) => void>();
    let nextId = 1;
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.once('message', () => resolve());
    });
    socket.on('message', (data: Buffer) =>
      reader.push(data, (kind, id, bytes, start, end) => {
        if (kind === Hub.Send) {
          on.message(bytes.subarray(start, end));
        } else if (kind === Hub.Work) {
          on.work(bytes.subarray(start, end));
        } else if (kind === Hub.Request) {
          // Echo: the requester's index is already first.
          writer.push(Hub.Response, id, bytes.subarray(start, end));
        } else if (kind === Hub.Response) {
          const done = pending.get(id);
          pending.delete(id);
          done?.(bytes.subarray(start + 4, end));
        }
      }),
    );
    return {
      send: (to, payload) => void writer.push(Hub.Send, to, payload),
      request: (to, payload) =>
        new Promise<Uint8Array>((resolve) => {
          const id = nextId++;
          pending.set(id, resolve);
          writer.push(Hub.Request, id, u32(to, payload));
        }),
      broadcast: (payload) => void writer.push(Hub.Broadcast, 0, payload),
      enqueue: (payload) => void writer.push(Hub.Work, 0, payload),
      close: async () => socket.close(),
    };
  },
};

/** The bus of each system, in its own process (`bus.ts --hub`), or nats-server. */
export async function listenQuicBus(tls: Tls): Promise<{ port: number; close(): Promise<void> }> {
  const bus = await QuicBus.listen({ host: '127.0.0.1', port: 0, cert: tls.cert, key: tls.key });
  return { port: bus.port, close: () => bus.close() };
}

export const SYSTEMS = [quicwireBus(false), quicwireBus(true), nats, wsHub];
