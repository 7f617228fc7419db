// Bus nodes sharing one namespace through NATS: each node publishes its agents and their
// subscriptions (its state) on a change and every second, and drops a node it has not heard
// from in three; a message or request for an agent on another node goes to that node as a
// NATS request, which answers once its agent has it (or answered). docs/BUS.md has the
// subjects and frames.

import { decode, encode } from '../codec.js';
import { invalidArgument, QuicwireError } from '../errors.js';
import { checkKeys, checkObject } from '../options.js';
import { randomId } from './control.js';
import { answer, FrameReader, FrameWriter, OK, readAnswer, statusOf } from './frames.js';

export interface ClusterOptions {
  /** The NATS server(s) the nodes share, e.g. 'nats://127.0.0.1:4222'. */
  servers: string | string[];
  /** Trusted CA (PEM) for a NATS server with TLS. */
  ca?: string;
  /** The subjects' prefix: buses with different ones do not see each other (default
   *  'quicwire'). */
  prefix?: string;
}

/** What a node says of itself: its agents and their subscriptions. */
export interface NodeState {
  node: string;
  agents: { name: string; instance: string; subs: [sid: number, pattern: string, queue: string][] }[];
}

/** What the bus does for the cluster. */
export interface ClusterHost {
  /** The state of this node now. */
  state(): NodeState['agents'];
  /** Another node's state, new or changed; `undefined` when it is gone. */
  nodeState(node: string, state: NodeState['agents'] | undefined): void;
  /** Delivers `frame` to local agent `name`; resolves once it has it. */
  deliver(name: string, frame: Uint8Array): Promise<void>;
  /** Calls local agent `name`; resolves with its answer (the payload). */
  call(name: string, frame: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
}

const HEARTBEAT_MS = 1000;
const Op = { Deliver: 1, Call: 2 } as const;

// The parts of the `nats` client used here (an optional peer dependency, loaded on use).
interface NatsMsg {
  data: Uint8Array;
  reply?: string;
  respond(data: Uint8Array): boolean;
}
interface NatsConnection {
  subscribe(subject: string, opts: { callback: (err: Error | null, msg: NatsMsg) => void }): unknown;
  publish(subject: string, data: Uint8Array): void;
  request(subject: string, data: Uint8Array, opts: { timeout: number }): Promise<NatsMsg>;
  flush(): Promise<void>;
  close(): Promise<void>;
}

export class Cluster {
  readonly node = randomId();
  readonly #nc: NatsConnection;
  readonly #prefix: string;
  readonly #host: ClusterHost;
  readonly #heard = new Map<string, number>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #announcing = false;

  private constructor(nc: NatsConnection, prefix: string, host: ClusterHost) {
    this.#nc = nc;
    this.#prefix = prefix;
    this.#host = host;
  }

  static async join(options: ClusterOptions, host: ClusterHost): Promise<Cluster> {
    checkObject('cluster options', options);
    checkKeys('cluster', options, ['servers', 'ca', 'prefix']);
    const prefix = options.prefix ?? 'quicwire';
    if (typeof prefix !== 'string' || !/^[A-Za-z0-9_-]+$/.test(prefix)) {
      throw invalidArgument('cluster prefix must be letters, digits, _ or -');
    }
    const nats = (await import('nats').catch(() => {
      throw new QuicwireError(
        'ERR_BACKEND_UNAVAILABLE',
        'a cluster needs the nats package: npm install nats',
      );
    })) as { connect(o: object): Promise<NatsConnection> };
    let nc: NatsConnection;
    try {
      nc = await nats.connect({
        servers: options.servers,
        ...(options.ca !== undefined && { tls: { ca: options.ca } }),
        name: 'quicwire-bus',
      });
    } catch (err) {
      throw new QuicwireError(
        'ERR_IO',
        `cannot reach NATS at ${String(options.servers)}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    const cluster = new Cluster(nc, prefix, host);
    await cluster.#start();
    return cluster;
  }

  /** Says this node's state soon (once per task, however many changes). */
  changed(): void {
    if (this.#announcing) return;
    this.#announcing = true;
    queueMicrotask(() => {
      this.#announcing = false;
      this.#announce();
    });
  }

  /** Delivers `frame` to agent `name` on `node`; resolves once that agent has it. */
  async deliver(node: string, name: string, frame: Uint8Array): Promise<void> {
    const body = new FrameWriter(8 + frame.length).u8(Op.Deliver).str(name).bytes(frame).done();
    readAnswer(await this.#ask(node, body, 30_000));
  }

  /** Calls agent `name` on `node`; resolves with its answer (the payload). */
  async call(node: string, name: string, frame: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    const body = new FrameWriter(12 + frame.length).u8(Op.Call).str(name).u32(timeoutMs).bytes(frame).done();
    return readAnswer(await this.#ask(node, body, timeoutMs + 1000));
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    // The others drop this node's agents now rather than after the heartbeat timeout.
    this.#nc.publish(`${this.#prefix}.gone`, new TextEncoder().encode(this.node));
    await this.#nc.close();
  }

  async #ask(node: string, body: Uint8Array, timeout: number): Promise<Uint8Array> {
    try {
      return (await this.#nc.request(`${this.#prefix}.node.${node}`, body, { timeout })).data;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'TIMEOUT')
        throw new QuicwireError('ERR_TIMEOUT', `bus node ${node} did not answer in time`);
      throw new QuicwireError(
        'ERR_CONNECTION_CLOSED',
        `bus node ${node} is gone: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
  }

  async #start(): Promise<void> {
    const p = this.#prefix;
    this.#nc.subscribe(`${p}.state`, {
      callback: (_err, msg) => {
        const state = decode(msg.data, 'msgpack') as NodeState;
        if (state.node === this.node) return;
        this.#heard.set(state.node, performance.now());
        this.#host.nodeState(state.node, state.agents);
      },
    });
    this.#nc.subscribe(`${p}.gone`, {
      callback: (_err, msg) => this.#forget(new TextDecoder().decode(msg.data)),
    });
    this.#nc.subscribe(`${p}.sync`, { callback: () => this.#announce() });
    this.#nc.subscribe(`${p}.node.${this.node}`, { callback: (_err, msg) => void this.#serve(msg) });
    await this.#nc.flush();
    // Everyone says their state now, so this node knows the namespace at once.
    this.#nc.publish(`${p}.sync`, new Uint8Array(0));
    await this.#nc.flush();
    this.#timer = setInterval(() => {
      this.#announce();
      const now = performance.now();
      for (const [node, at] of this.#heard) if (now - at > 3 * HEARTBEAT_MS + 500) this.#forget(node);
    }, HEARTBEAT_MS);
    this.#timer.unref?.();
  }

  #forget(node: string): void {
    if (this.#heard.delete(node)) this.#host.nodeState(node, undefined);
  }

  #announce(): void {
    const state: NodeState = { node: this.node, agents: this.#host.state() };
    this.#nc.publish(`${this.#prefix}.state`, encode(state, 'msgpack'));
  }

  /** A request from another node for one of this node's agents. */
  async #serve(msg: NatsMsg): Promise<void> {
    const r = new FrameReader(msg.data);
    const op = r.u8();
    const name = r.str();
    try {
      if (op === Op.Deliver) {
        await this.#host.deliver(name, r.rest());
        msg.respond(answer(OK, ''));
      } else {
        const timeoutMs = r.u32();
        msg.respond(answer(OK, await this.#host.call(name, r.rest(), timeoutMs)));
      }
    } catch (err) {
      msg.respond(answer(statusOf(err), (err as Error).message));
    }
  }
}
