// The bus: a QuicServer that routes between the agents connected to it, by name and by
// subject. It reads a frame's head and passes the payload on as it came; each agent has a
// connection of its own, so a slow agent holds up only what is sent to it.

import { type Connection, type Delivery, UNWATCHED } from '../connection.js';
import { invalidArgument, QuicwireError } from '../errors.js';
import { checkKeys, checkObject } from '../options.js';
import { QuicServer } from '../server.js';
import type { ServerOptions } from '../types.js';
import { Cluster, type ClusterHost, type ClusterOptions, type NodeState } from './cluster.js';
import { type Control, decodeControl, encodeControl } from './control.js';
import { answer, FrameReader, FrameWriter, Kind, OK, statusOf } from './frames.js';
import { Leases } from './leases.js';
import { pickByKey } from './shard.js';
import { SubjectIndex } from './subjects.js';

export interface BusOptions extends ServerOptions {
  /** Share one namespace with other bus nodes through NATS: agents on any node reach each
   *  other by name and subject (needs the `nats` package). */
  cluster?: ClusterOptions;
  /** How a queue group's member is chosen for each message or request: in turn
   *  ('round-robin', the default), or the one with the fewest deliveries and requests in
   *  flight ('least-loaded'). */
  balance?: 'round-robin' | 'least-loaded';
}

/** An agent joining or leaving the bus. */
export interface PresenceEvent {
  event: 'join' | 'leave';
  name: string;
}

/** How the bus reaches an agent: its connection, or (in a cluster) its node. */
interface Link {
  /** `unconfirmed`: the delivery settles once the frame is queued to go. */
  post(frame: Uint8Array, delivery: Delivery, unconfirmed?: boolean): void;
  request(frame: Uint8Array, options: { timeoutMs: number; signal?: AbortSignal }): Promise<unknown>;
}

/** An agent the bus can reach, here or on another node. */
interface Reachable {
  name: string;
  /** The agent object's id: the same agent reconnecting takes its name back. */
  instance: string;
  link: Link;
  /** Deliveries and requests in flight to it. */
  load: number;
}

/** An agent connected to this node. */
interface Member extends Reachable {
  conn: Connection;
  subs: Map<number, Sub>;
  watching: boolean;
  /** What to acknowledge to it, sent in one ACK frame at the end of the task. */
  acks: FrameWriter | undefined;
}

/** An agent on another node of the cluster. */
interface Remote extends Reachable {
  subs: Sub[];
  /** Its subscriptions as its node last said them. */
  said: string;
}

interface Sub {
  member: Reachable;
  sid: number;
  pattern: string;
  queue: string;
}

/** One published message or ask's receivers: per agent, its subscriptions. */
type Targets = Map<Reachable, number[]>;

export class QuicBus {
  readonly #server: QuicServer;
  readonly #balance: 'round-robin' | 'least-loaded';
  readonly #agents = new Map<string, Member>();
  readonly #byConn = new Map<Connection, Member>();
  readonly #index = new SubjectIndex<Sub>();
  readonly #turns = new Map<string, number>();
  readonly #leases = new Leases();
  #cluster: Cluster | undefined;
  /** Other nodes' agents: by node, then by name. */
  readonly #remotes = new Map<string, Map<string, Remote>>();
  #joinHandler: ((event: PresenceEvent) => void) | undefined;
  #leaveHandler: ((event: PresenceEvent) => void) | undefined;

  private constructor(server: QuicServer, balance: 'round-robin' | 'least-loaded') {
    this.#server = server;
    this.#balance = balance;
    server.onMessage((body, conn) => this.#message(body as Uint8Array, conn));
    server.onRequest((body, conn, info) => this.#request(body as Uint8Array, conn, info.signal));
    server.onDisconnect((conn) => this.#left(conn));
    // An answer that finds its requester gone (it left, aborted or timed out) is routine on a
    // bus; `bus.server.onError` hears of them for whoever wants to.
    server.onError(() => {});
  }

  /** Listens as a quicwire server (the same options) that agents connect to. */
  static async listen(options: BusOptions): Promise<QuicBus> {
    checkObject('QuicBus.listen options', options);
    const { balance = 'round-robin', ...serverOptions } = options;
    if (balance !== 'round-robin' && balance !== 'least-loaded') {
      throw invalidArgument(`balance must be 'round-robin' or 'least-loaded', got ${String(balance)}`);
    }
    if (serverOptions.encodings !== undefined) {
      throw invalidArgument('a bus sets its encodings itself: agents speak its raw frames');
    }
    const { cluster, ...quic } = serverOptions as BusOptions;
    const server = await QuicServer.listen({ ...quic, encodings: ['raw'] });
    const bus = new QuicBus(server, balance);
    if (cluster !== undefined) {
      try {
        bus.#cluster = await Cluster.join(cluster, bus.#clusterHost());
      } catch (err) {
        await server.close({ graceful: false });
        throw err;
      }
    }
    return bus;
  }

  get host(): string {
    return this.#server.host;
  }

  get port(): number {
    return this.#server.port;
  }

  /** The quicwire server underneath (stats, metrics). */
  get server(): QuicServer {
    return this.#server;
  }

  /** The names of the agents connected now (to any node of a cluster). */
  agents(): string[] {
    const names = new Set(this.#agents.keys());
    for (const node of this.#remotes.values()) for (const name of node.keys()) names.add(name);
    return [...names];
  }

  onJoin(handler: (event: PresenceEvent) => void): this {
    if (typeof handler !== 'function') throw invalidArgument('onJoin takes a function');
    this.#joinHandler = handler;
    return this;
  }

  onLeave(handler: (event: PresenceEvent) => void): this {
    if (typeof handler !== 'function') throw invalidArgument('onLeave takes a function');
    this.#leaveHandler = handler;
    return this;
  }

  /** Stops the bus: agents see their connections close (and try to reconnect). */
  async close(options?: { graceful?: boolean; timeoutMs?: number }): Promise<void> {
    if (options !== undefined) {
      checkObject('close options', options);
      checkKeys('close', options, ['graceful', 'timeoutMs']);
    }
    this.#leases.clear();
    await this.#cluster?.close();
    this.#cluster = undefined;
    await this.#server.close(options);
  }

  // Messages: sends and publishes, acknowledged in one ACK frame per agent and task.

  #message(body: Uint8Array, conn: Connection): void {
    const from = this.#byConn.get(conn);
    if (!from) {
      conn.close(); // Frames before HELLO: not an agent.
      return;
    }
    const r = new FrameReader(body);
    let kind: number;
    let seq: number;
    try {
      kind = r.u8();
      seq = r.u32();
    } catch {
      conn.close(); // Not even a frame's head: not an agent's.
      return;
    }
    try {
      if (kind === Kind.Send) {
        const name = r.str();
        const to = this.#find(name);
        if (!to) throw noAgent(name);
        const frame = FrameWriter.scratch().u8(Kind.Deliver).str(from.name).bytes(r.rest()).done();
        forward(to, frame, tally(from, seq, 1, true));
      } else if (kind === Kind.Publish) {
        const subject = r.str();
        const payload = r.rest();
        const targets = this.#targets(subject, '');
        const t = tally(from, seq, targets.size, false);
        for (const [member, sids] of targets) {
          forward(member, subjectFrame(Kind.Event, sids, subject, from.name, payload), t);
        }
      } else if (kind === Kind.Broadcast) {
        const frame = FrameWriter.scratch().u8(Kind.Deliver).str(from.name).bytes(r.rest()).done();
        const all = this.#everyone().filter((m) => m !== from);
        const t = tally(from, seq, all.length, false);
        for (const member of all) forward(member, frame, t);
      } else {
        throw new QuicwireError('ERR_PROTOCOL', `unknown bus frame kind ${kind}`);
      }
    } catch (err) {
      if (seq !== 0) acknowledge(from, seq, statusOf(err), 0);
    }
  }

  // Requests: control, and requests to agents, answered with a status.

  /** `signal`: the requesting agent stopped waiting; the calls made for it are cancelled
   *  in turn, which tells their agents' handlers. */
  async #request(body: Uint8Array, conn: Connection, signal: AbortSignal): Promise<Uint8Array> {
    try {
      const r = new FrameReader(body);
      const kind = r.u8();
      if (kind === Kind.Control)
        return answer(OK, encodeControl(this.#control(decodeControl(r.rest()), conn)));
      const from = this.#byConn.get(conn);
      if (!from) throw new QuicwireError('ERR_PROTOCOL', 'an agent says hello first');
      const timeoutMs = r.u32();
      if (kind === Kind.Request) {
        const name = r.str();
        const to = this.#find(name);
        if (!to) throw noAgent(name);
        // The call takes a copy of the frame before it waits.
        const frame = FrameWriter.scratch().u8(Kind.Call).str(from.name).bytes(r.rest()).done();
        return answer(OK, await this.#call(to, frame, timeoutMs, signal));
      }
      if (kind === Kind.Gather) {
        const want = r.u32();
        const subject = r.str();
        const key = r.str();
        const payload = r.rest();
        return answer(OK, await this.#gather(from.name, subject, key, want, timeoutMs, payload, signal));
      }
      throw new QuicwireError('ERR_PROTOCOL', `unknown bus request kind ${kind}`);
    } catch (err) {
      return answer(statusOf(err), (err as Error).message);
    }
  }

  async #call(
    to: Reachable,
    frame: Uint8Array,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<Uint8Array> {
    to.load++;
    try {
      return (await to.link.request(frame, { timeoutMs, ...(signal && { signal }) })) as Uint8Array;
    } catch (err) {
      if (err instanceof QuicwireError && err.code === 'ERR_CONNECTION_CLOSED') {
        throw new QuicwireError('ERR_CONNECTION_CLOSED', `agent ${to.name} left before it answered`);
      }
      throw err;
    } finally {
      to.load--;
    }
  }

  /** An ask, quorum or scatter: the subject's subscribers (one per queue group) are asked,
   *  and the first `want` answers (0: all) go back, `[count u32]([from][status u16][len
   *  u32][payload])*`. The calls still out are then cancelled. */
  async #gather(
    from: string,
    subject: string,
    key: string,
    want: number,
    timeoutMs: number,
    payload: Uint8Array,
    signal: AbortSignal,
  ): Promise<Uint8Array> {
    const targets = this.#targets(subject, key);
    if (targets.size === 0) throw new QuicwireError('ERR_NO_RESPONDERS', `no agent subscribes to ${subject}`);
    const need = want === 0 ? targets.size : Math.min(want, targets.size);
    const stop = new AbortController();
    const out = new FrameWriter(256).u32(0);
    let answered = 0;
    let ok = 0;
    await new Promise<void>((resolve) => {
      // The asker gave up: so do the calls still out.
      const gaveUp = () => {
        stop.abort();
        resolve();
      };
      if (signal.aborted) return gaveUp();
      signal.addEventListener('abort', gaveUp, { once: true });
      stop.signal.addEventListener('abort', () => signal.removeEventListener('abort', gaveUp), {
        once: true,
      });
      for (const [member, sids] of targets) {
        const frame = subjectFrame(Kind.CallSubject, sids, subject, from, payload);
        const settle = (status: number, body: Uint8Array | string) => {
          if (stop.signal.aborted) return;
          answered++;
          const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : body;
          if (status === OK) ok++;
          out.str(member.name).u16(status).u32(bytes.length).bytes(bytes);
          // Enough successes, or every one answered.
          if (ok >= need || answered === targets.size) {
            stop.abort();
            resolve();
          }
        };
        this.#call(member, frame, timeoutMs, stop.signal).then(
          (reply) => settle(OK, reply),
          (err) => settle(statusOf(err), (err as Error).message),
        );
      }
    });
    const frame = out.done();
    new DataView(frame.buffer, frame.byteOffset).setUint32(0, answered);
    return frame;
  }

  /** Who gets a message on `subject`: every plain subscriber, and one member of each
   *  queue group (by `key` when one is given, else by the bus's balance). */
  #targets(subject: string, key: string): Targets {
    const targets: Targets = new Map();
    let groups: Map<string, Sub[]> | undefined;
    for (const sub of this.#index.match(subject)) {
      if (sub.queue === '') {
        add(targets, sub);
      } else {
        groups ??= new Map();
        const group = groups.get(sub.queue);
        if (group) group.push(sub);
        else groups.set(sub.queue, [sub]);
      }
    }
    if (groups) for (const [queue, members] of groups) add(targets, this.#pick(queue, members, key));
    return targets;
  }

  #pick(queue: string, members: Sub[], key: string): Sub {
    if (key !== '') return pickByKey(members, key, (s) => s.member.name);
    const turn = this.#turns.get(queue) ?? 0;
    this.#turns.set(queue, turn + 1);
    if (this.#balance === 'round-robin') return members[turn % members.length] as Sub;
    // Least loaded; among equals, in turn.
    let best = members[turn % members.length] as Sub;
    for (const s of members) if (s.member.load < best.member.load) best = s;
    return best;
  }

  // Control: hello, subscriptions, presence and leases.

  #control(c: Control, conn: Connection): unknown {
    if (c.op === 'hello') return this.#hello(c, conn);
    const member = this.#byConn.get(conn);
    if (!member) throw new QuicwireError('ERR_PROTOCOL', 'an agent says hello first');
    switch (c.op) {
      case 'subscribe':
        this.#subscribe(member, c.sid, c.subject, c.queue);
        return null;
      case 'unsubscribe': {
        const sub = member.subs.get(c.sid);
        if (sub) {
          member.subs.delete(c.sid);
          this.#index.delete(sub.pattern, sub);
          this.#cluster?.changed();
        }
        return null;
      }
      case 'agents':
        return this.agents();
      case 'watch':
        member.watching = c.on;
        return null;
      case 'lease':
        return this.#leases.acquire(c.resource, member.name, c.ttlMs);
      case 'release':
        return this.#leases.release(c.resource, member.name);
    }
  }

  #hello(c: Extract<Control, { op: 'hello' }>, conn: Connection): null {
    if (this.#byConn.has(conn)) throw new QuicwireError('ERR_PROTOCOL', 'hello was said already');
    const elsewhere = this.#remote(c.name);
    if (elsewhere && elsewhere.instance !== c.instance) {
      throw new QuicwireError(
        'ERR_NAME_TAKEN',
        `an agent named ${JSON.stringify(c.name)} is on another bus node`,
      );
    }
    const held = this.#agents.get(c.name);
    if (held) {
      if (held.instance !== c.instance) {
        throw new QuicwireError('ERR_NAME_TAKEN', `an agent named ${JSON.stringify(c.name)} is connected`);
      }
      // The same agent, back on a new connection before the bus saw the old one go.
      this.#forget(held);
      held.conn.close();
    }
    const member: Member = {
      name: c.name,
      instance: c.instance,
      conn,
      link: conn,
      subs: new Map(),
      load: 0,
      watching: c.watch,
      acks: undefined,
    };
    this.#agents.set(c.name, member);
    this.#byConn.set(conn, member);
    for (const s of c.subscriptions) this.#subscribe(member, s.sid, s.subject, s.queue);
    this.#presence({ event: 'join', name: c.name });
    this.#cluster?.changed();
    return null;
  }

  #subscribe(member: Member, sid: number, subject: string, queue: string): void {
    if (member.subs.has(sid)) return;
    const sub: Sub = { member, sid, pattern: subject, queue };
    member.subs.set(sid, sub);
    this.#index.add(subject, sub);
    this.#cluster?.changed();
  }

  #left(conn: Connection): void {
    const member = this.#byConn.get(conn);
    if (!member) return;
    this.#forget(member);
    this.#presence({ event: 'leave', name: member.name });
  }

  #forget(member: Member): void {
    this.#byConn.delete(member.conn);
    if (this.#agents.get(member.name) === member) this.#agents.delete(member.name);
    for (const sub of member.subs.values()) this.#index.delete(sub.pattern, sub);
    member.subs.clear();
    this.#leases.releaseAll(member.name);
    this.#cluster?.changed();
  }

  // The cluster: other nodes' agents, reached through NATS.

  /** The agent named `name`: here, else on another node. */
  #find(name: string): Reachable | undefined {
    return this.#agents.get(name) ?? this.#remote(name);
  }

  #remote(name: string): Remote | undefined {
    for (const node of this.#remotes.values()) {
      const r = node.get(name);
      if (r) return r;
    }
    return undefined;
  }

  #everyone(): Reachable[] {
    const all: Reachable[] = [...this.#agents.values()];
    for (const node of this.#remotes.values()) for (const r of node.values()) all.push(r);
    return all;
  }

  #clusterHost(): ClusterHost {
    return {
      state: () =>
        [...this.#agents.values()].map((m) => ({
          name: m.name,
          instance: m.instance,
          subs: [...m.subs.values()].map((s): [number, string, string] => [s.sid, s.pattern, s.queue]),
        })),
      nodeState: (node, agents) => this.#nodeState(node, agents),
      deliver: (name, frame) => {
        const member = this.#agents.get(name);
        if (!member) return Promise.reject(noAgent(name));
        return new Promise((resolve, reject) => forward(member, frame, new Settle(resolve, reject)));
      },
      call: (name, frame, timeoutMs) => {
        const member = this.#agents.get(name);
        if (!member) return Promise.reject(noAgent(name));
        return this.#call(member, frame, timeoutMs);
      },
    };
  }

  /** Another node's agents as it says them now (`undefined`: the node is gone). */
  #nodeState(node: string, agents: NodeState['agents'] | undefined): void {
    const cluster = this.#cluster;
    const before = this.#remotes.get(node) ?? new Map<string, Remote>();
    const after = new Map<string, Remote>();
    for (const a of agents ?? []) {
      let remote = before.get(a.name);
      // A node says its state every second: subscriptions as they were stay indexed.
      const said = JSON.stringify(a.subs);
      if (remote?.said === said) {
        after.set(a.name, remote);
        continue;
      }
      if (remote) {
        for (const sub of remote.subs) this.#index.delete(sub.pattern, sub);
      } else if (cluster) {
        const link = new RemoteLink(cluster, node, a.name);
        remote = { name: a.name, instance: a.instance, link, load: 0, subs: [], said: '' };
      } else {
        continue;
      }
      remote.said = said;
      remote.subs = a.subs.map(([sid, pattern, queue]) => ({
        member: remote as Remote,
        sid,
        pattern,
        queue,
      }));
      for (const sub of remote.subs) this.#index.add(sub.pattern, sub);
      after.set(a.name, remote);
    }
    if (after.size > 0) this.#remotes.set(node, after);
    else this.#remotes.delete(node);
    for (const [name, remote] of before) {
      if (after.has(name)) continue;
      for (const sub of remote.subs) this.#index.delete(sub.pattern, sub);
      this.#presence({ event: 'leave', name });
    }
    for (const name of after.keys()) if (!before.has(name)) this.#presence({ event: 'join', name });
  }

  #presence(event: PresenceEvent): void {
    (event.event === 'join' ? this.#joinHandler : this.#leaveHandler)?.(event);
    const frame = new FrameWriter(4 + event.name.length * 3)
      .u8(Kind.Presence)
      .u8(event.event === 'join' ? 1 : 0)
      .str(event.name)
      .done();
    for (const m of this.#agents.values()) {
      // Unconfirmed, as ACK entries: nobody waits to hear what became of it.
      if (m.watching && m.name !== event.name) m.conn.post(frame, UNWATCHED, true);
    }
  }
}

function add(targets: Targets, sub: Sub): void {
  const sids = targets.get(sub.member);
  if (sids) sids.push(sub.sid);
  else targets.set(sub.member, [sub.sid]);
}

/** The tally of a send, publish or broadcast to `n` agents; none for an unconfirmed one
 *  (sequence number 0), which is passed on unconfirmed, with no ACK entry. */
function tally(from: Member, seq: number, n: number, one: boolean): Tally | undefined {
  return seq === 0 ? undefined : new Tally(n, from, seq, one);
}

/** What became of one send, publish or broadcast: acknowledged to its sender once each
 *  receiver has it or failed (`one`: a send, whose failure is its sender's error). */
class Tally {
  delivered = 0;
  status = OK;

  constructor(
    public left: number,
    readonly from: Member,
    readonly seq: number,
    readonly one: boolean,
  ) {
    if (left === 0) acknowledge(from, seq, OK, 0);
  }

  settle(err: QuicwireError | undefined): void {
    if (err) this.status = statusOf(err);
    else this.delivered++;
    if (--this.left === 0) {
      acknowledge(this.from, this.seq, this.one && this.delivered === 0 ? this.status : OK, this.delivered);
    }
  }
}

/** One message on its way to an agent (a delivery without a promise: the bus forwards many). */
class Forward implements Delivery {
  remaining = 1;

  constructor(
    readonly to: Reachable,
    readonly tally: Tally | Settle,
  ) {
    to.load++;
  }

  resolve(): void {
    this.to.load--;
    this.tally.settle(undefined);
  }

  reject(err: QuicwireError): void {
    this.to.load--;
    this.tally.settle(err);
  }
}

/** Passes a frame on to `to`; without a tally, unconfirmed (no one hears what became of it). */
function forward(to: Reachable, frame: Uint8Array, tally: Tally | Settle | undefined): void {
  if (tally) to.link.post(frame, new Forward(to, tally));
  else to.link.post(frame, UNWATCHED, true);
}

/** A delivery for another node, which answers once its agent has it. */
class Settle {
  constructor(
    readonly resolve: () => void,
    readonly reject: (err: QuicwireError) => void,
  ) {}

  settle(err: QuicwireError | undefined): void {
    if (err) this.reject(err);
    else this.resolve();
  }
}

/** An agent on another node: reached with NATS requests to that node. */
class RemoteLink implements Link {
  constructor(
    readonly cluster: Cluster,
    readonly node: string,
    readonly name: string,
  ) {}

  post(frame: Uint8Array, delivery: Delivery): void {
    // The frame is a view of a shared buffer: the request takes a copy now.
    this.cluster.deliver(this.node, this.name, frame).then(
      () => delivery.resolve(),
      (err: QuicwireError) => delivery.reject(err),
    );
  }

  request(frame: Uint8Array, options: { timeoutMs: number }): Promise<Uint8Array> {
    return this.cluster.call(this.node, this.name, frame, options.timeoutMs);
  }
}

/** Queues an ACK entry for `to`: one ACK frame per agent and task carries them all. */
function acknowledge(to: Member, seq: number, status: number, count: number): void {
  if (!to.conn.isOpen) return;
  if (!to.acks) {
    to.acks = new FrameWriter(256).u8(Kind.Ack);
    queueMicrotask(() => {
      const frame = to.acks?.done();
      to.acks = undefined;
      // Unconfirmed: the agent acknowledges it late, in fewer packets.
      if (frame && to.conn.isOpen) to.conn.post(frame, UNWATCHED, true);
    });
  }
  to.acks.u32(seq).u16(status).u32(count);
}

function subjectFrame(
  kind: number,
  sids: number[],
  subject: string,
  from: string,
  payload: Uint8Array,
): Uint8Array {
  const w = FrameWriter.scratch().u8(kind).u16(sids.length);
  for (const sid of sids) w.u32(sid);
  return w.str(subject).str(from).bytes(payload).done();
}

function noAgent(name: string): QuicwireError {
  return new QuicwireError('ERR_NO_RESPONDERS', `no agent named ${JSON.stringify(name)} is connected`);
}
