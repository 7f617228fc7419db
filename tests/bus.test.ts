import { afterEach, describe, expect, it } from 'vitest';
import { SubjectIndex } from '../ts/bus/subjects.js';
import { Agent, type AgentOptions, type PresenceEvent, QuicBus } from '../ts/index.js';
import { lineFrom } from './fixtures/spawn.js';
import { cert, eventually, fixture, gate, rejectsWith, sleep, transport } from './helpers.js';

const open: { close(): Promise<void> }[] = [];

afterEach(async () => {
  while (open.length > 0) await open.pop()?.close();
});

async function bus(options: Partial<Parameters<typeof QuicBus.listen>[0]> = {}): Promise<QuicBus> {
  const b = await QuicBus.listen({ cert: cert.cert, key: cert.key, ...options });
  open.push(b);
  return b;
}

async function agent(b: { port: number }, name: string, options: Partial<AgentOptions> = {}): Promise<Agent> {
  const a = await Agent.connect(`127.0.0.1:${b.port}`, { ca: cert.cert, name, ...options });
  open.push(a);
  return a;
}

describe('subjects', () => {
  it('match NATS-style: * one token, > the rest', () => {
    const index = new SubjectIndex<string>();
    for (const p of ['tasks.build', 'tasks.*', 'tasks.>', '>', '*.build', 'tasks.*.done', 'other'])
      index.add(p, p);
    const m = (s: string) => index.match(s).sort();
    expect(m('tasks.build')).toEqual(['*.build', '>', 'tasks.*', 'tasks.>', 'tasks.build']);
    expect(m('tasks')).toEqual(['>']);
    expect(m('tasks.a.done')).toEqual(['>', 'tasks.*.done', 'tasks.>']);
    expect(m('tasks.a.b')).toEqual(['>', 'tasks.>']);
    index.delete('>', '>');
    index.delete('tasks.*', 'tasks.*');
    expect(m('tasks.build')).toEqual(['*.build', 'tasks.>', 'tasks.build']);
    // Deleting every subscription leaves only the root.
    for (const p of ['tasks.build', 'tasks.>', '*.build', 'tasks.*.done', 'other']) index.delete(p, p);
    expect(m('tasks.build')).toEqual([]);
    expect(index.size).toBe(1);
  });
});

describe('bus', () => {
  it('routes messages and requests by name; send resolves once the handler has it', async () => {
    const big = { maxMessageSize: 8 << 20 };
    const b = await bus(big);
    const alice = await agent(b, 'alice', big);
    const bob = await agent(b, 'bob', big);
    const got: unknown[] = [];
    bob.onMessage((m, info) => got.push([m, info.from]));
    bob.onRequest((m, info) => ({ echo: m, from: info.from }));
    await alice.send('bob', { hello: 1 });
    expect(got).toEqual([[{ hello: 1 }, 'alice']]);
    // Order holds from one sender to one receiver.
    await Promise.all(Array.from({ length: 1000 }, (_, i) => alice.send('bob', i)));
    expect(got.slice(1).map((g) => (g as unknown[])[0])).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    const replies = await Promise.all(Array.from({ length: 1000 }, (_, i) => alice.request('bob', i)));
    expect(replies[999]).toEqual({ echo: 999, from: 'alice' });
    expect(b.agents().sort()).toEqual(['alice', 'bob']);
    expect((await alice.agents()).sort()).toEqual(['alice', 'bob']);
    // Bytes and large payloads pass as they are.
    bob.onRequest((m) => (m as Uint8Array).length);
    expect(await alice.request('bob', new Uint8Array(3 << 20).fill(7))).toBe(3 << 20);
  });

  it('keeps messages for receive() when no onMessage handler takes them', async () => {
    const b = await bus();
    const alice = await agent(b, 'alice');
    const bob = await agent(b, 'bob');
    await rejectsWith(bob.receive({ timeoutMs: 20 }), 'ERR_TIMEOUT');
    await alice.send('bob', 1);
    const kept = bob.receive();
    const waiting = bob.receive();
    await alice.send('bob', 2);
    expect(await kept).toEqual({ message: 1, from: 'alice' });
    expect(await waiting).toEqual({ message: 2, from: 'alice' });
    const pending = bob.receive();
    await bob.close();
    await rejectsWith(pending, 'ERR_CONNECTION_CLOSED');
  });

  it('says ERR_NO_RESPONDERS at once for a name nobody has, and ERR_REMOTE for a throwing handler', async () => {
    const b = await bus();
    const alice = await agent(b, 'alice');
    const bob = await agent(b, 'bob');
    const started = performance.now();
    await rejectsWith(alice.send('carol', 1), 'ERR_NO_RESPONDERS');
    await rejectsWith(alice.request('carol', 1, { timeoutMs: 20_000 }), 'ERR_NO_RESPONDERS');
    expect(performance.now() - started).toBeLessThan(5000);
    bob.onRequest(() => {
      throw new Error('not today');
    });
    const err = await rejectsWith(alice.request('bob', 1), 'ERR_REMOTE');
    expect(err.message).toContain('not today');
    // A request times out with the target named, and the agents go on.
    bob.onRequest(() => new Promise(() => {}));
    const late = await rejectsWith(alice.request('bob', 1, { timeoutMs: 200 }), 'ERR_TIMEOUT');
    expect(late.message).toContain('200');
    bob.onRequest((m) => m);
    expect(await alice.request('bob', 'fine')).toBe('fine');
    // Bad arguments are typed errors.
    await rejectsWith(alice.send('', 1), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(alice.publish('a.*', 1), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(
      alice.subscribe('a.>.b', () => {}),
      'ERR_INVALID_ARGUMENT',
    );
    await rejectsWith(
      alice.send('bob', () => {}),
      'ERR_ENCODE',
    );
  });

  it('sends, publishes and broadcasts unconfirmed: resolved once queued, in order, told nothing', async () => {
    const b = await bus();
    const alice = await agent(b, 'alice');
    const bob = await agent(b, 'bob');
    const carol = await agent(b, 'carol');
    const got: unknown[] = [];
    bob.onMessage((m) => got.push(m));
    await bob.subscribe('news', (m) => got.push(`news:${m}`));
    const carolGot: unknown[] = [];
    carol.onMessage((m) => carolGot.push(m));
    await carol.subscribe('news', (m) => carolGot.push(`news:${m}`));
    const how = { unconfirmed: true } as const;
    expect(await alice.send('bob', 'quick', how)).toBeUndefined();
    expect(await alice.publish('news', 'n', how)).toBeUndefined();
    expect(await alice.broadcast('all', how)).toBeUndefined();
    // Nobody of that name: no word of it, and the agent goes on.
    await alice.send('nobody', 1, how);
    // A confirmed send after them resolves once Bob has it, so he has them all, in order.
    await alice.send('bob', 'after');
    expect(got).toEqual(['quick', 'news:n', 'all', 'after']);
    await eventually(() => carolGot.length === 2, 'carol has hers');
    expect(carolGot).toEqual(['news:n', 'all']);
    await rejectsWith(alice.send('bob', 1, { unconfirmed: 1 as never }), 'ERR_INVALID_ARGUMENT');
    expect(await alice.publish('news', 'confirmed')).toBe(2);
  });

  it("shares one socket among a process's agents with the same options, each on its own connection", async () => {
    const b = await bus();
    const peers = () => b.server.peers().map((p) => p.peer);
    const a1 = await agent(b, 'a1');
    const a2 = await agent(b, 'a2');
    const other = await agent(b, 'other', { keepAliveMs: 2000 });
    await eventually(() => peers().length === 3, 'three connections');
    const [p1, p2, p3] = peers();
    expect(p1).toBe(p2); // one UDP socket, two QUIC connections
    expect(p3).not.toBe(p1);
    // Closing one agent leaves the other's connection (and the socket) alone.
    await a1.close();
    a2.onRequest((m) => m);
    expect(await other.request('a2', 'still here')).toBe('still here');
  });

  it('closes a connection that sends what is not a bus frame, and goes on', async () => {
    const b = await bus();
    const t = transport({ encoding: 'raw' });
    const raw = await t.connect('127.0.0.1', b.port);
    // Before hello, and too short: the bus closes the connection as it reads it, so the
    // send may learn of the close before the delivery.
    await raw.send(new Uint8Array([1, 2])).catch(() => {});
    await eventually(() => !raw.isOpen, 'the bus closed it');
    const raw2 = await t.connect('127.0.0.1', b.port, { pooled: false });
    const answer = (await raw2.request(new Uint8Array([20, 0xc1]))) as Uint8Array; // bad control
    expect(answer[0] === 0xff && answer[1] === 0xff).toBe(false); // an error status, not OK
    const a = await agent(b, 'a');
    const c = await agent(b, 'c');
    c.onRequest((m) => m);
    expect(await a.request('c', 'fine')).toBe('fine');
  });

  it('refuses a name in use with ERR_NAME_TAKEN', async () => {
    const b = await bus();
    await agent(b, 'alice');
    await rejectsWith(agent(b, 'alice'), 'ERR_NAME_TAKEN');
    expect(b.agents()).toEqual(['alice']);
    await rejectsWith(
      QuicBus.listen({ cert: cert.cert, key: cert.key, balance: 'random' as 'round-robin' }),
      'ERR_INVALID_ARGUMENT',
    );
  });

  it('publishes to subscribers by pattern, queue groups get one each, broadcast reaches all', async () => {
    const b = await bus();
    const pub = await agent(b, 'pub');
    const seen: string[] = [];
    const subs = await Promise.all(['a', 'b', 'c', 'd'].map((n) => agent(b, n)));
    const [a, bb, c, d] = subs as [Agent, Agent, Agent, Agent];
    await a.subscribe('tasks.*', (m, info) => seen.push(`a:${info.subject}:${m}`));
    await bb.subscribe('tasks.>', (m, info) => seen.push(`b:${info.subject}:${m}`));
    await c.subscribe('tasks.build', (m) => seen.push(`c:${m}`), { queue: 'workers' });
    await d.subscribe('tasks.build', (m) => seen.push(`d:${m}`), { queue: 'workers' });
    expect(await pub.publish('tasks.build', 1)).toBe(3);
    expect(await pub.publish('tasks.build', 2)).toBe(3);
    expect(await pub.publish('tasks.x.y', 3)).toBe(1);
    expect(await pub.publish('nobody.listens', 4)).toBe(0);
    expect(seen.filter((s) => s.startsWith('a:'))).toEqual(['a:tasks.build:1', 'a:tasks.build:2']);
    expect(seen.filter((s) => s.startsWith('b:'))).toEqual([
      'b:tasks.build:1',
      'b:tasks.build:2',
      'b:tasks.x.y:3',
    ]);
    // The queue group: round robin, one member per message.
    expect(seen.filter((s) => s.startsWith('c:') || s.startsWith('d:')).sort()).toEqual(
      ['c:1', 'd:2'].sort(),
    );
    // Unsubscribing stops it.
    const sub = await a.subscribe('news', (m) => seen.push(`news:${m}`));
    expect(await pub.publish('news', 'x')).toBe(1);
    await sub.unsubscribe();
    expect(await pub.publish('news', 'y')).toBe(0);
    // Broadcast: every other agent, by onMessage.
    const heard: string[] = [];
    for (const s of subs) s.onMessage((m, info) => heard.push(`${info.from}:${m}`));
    expect(await pub.broadcast('all')).toBe(4);
    expect(heard).toEqual(['pub:all', 'pub:all', 'pub:all', 'pub:all']);
  });

  it('balances a queue group round robin or by least load', async () => {
    for (const balance of ['round-robin', 'least-loaded'] as const) {
      const b = await bus({ balance });
      const client = await agent(b, 'client');
      const counts = new Map<string, number>();
      const workers = await Promise.all(['w1', 'w2', 'w3'].map((n) => agent(b, n)));
      for (const w of workers) {
        await w.subscribe(
          'jobs',
          async (m) => {
            counts.set(w.name, (counts.get(w.name) ?? 0) + 1);
            // w1 is slow: least-loaded gives it less.
            if (w.name === 'w1') await sleep(20);
            return m;
          },
          { queue: 'pool' },
        );
      }
      const answers = await Promise.all(Array.from({ length: 90 }, (_, i) => client.ask('jobs', i)));
      expect(answers).toEqual(Array.from({ length: 90 }, (_, i) => i));
      if (balance === 'round-robin') expect([...counts.values()]).toEqual([30, 30, 30]);
      else expect(counts.get('w1') ?? 0).toBeLessThan(30);
    }
  });

  it('asks, gathers a quorum, scatters, and shards by key', async () => {
    const b = await bus();
    const client = await agent(b, 'client');
    const voters = await Promise.all(['v1', 'v2', 'v3', 'v4'].map((n) => agent(b, n)));
    for (const [i, v] of voters.entries()) {
      await v.subscribe('vote', async (m) => {
        if (v.name === 'v4') throw new Error('abstains');
        await sleep(i * 30);
        return `${v.name}:${m}`;
      });
    }
    // The first answer.
    expect(await client.ask('vote', 'q')).toBe('v1:q');
    // The first two that succeed; the others are cancelled.
    const q = await client.quorum('vote', 'q', { threshold: 2 });
    expect(q.map((a) => a.from)).toEqual(['v1', 'v2']);
    // Three succeed at most: no quorum of four.
    await rejectsWith(client.quorum('vote', 'q', { threshold: 4 }), 'ERR_REMOTE');
    await rejectsWith(client.quorum('vote', 'q', { threshold: 5 }), 'ERR_NO_RESPONDERS');
    // Every answer and failure.
    const all = await client.scatter('vote', 'q');
    expect(all.map((a) => a.from).sort()).toEqual(['v1', 'v2', 'v3', 'v4']);
    const failed = all.find((a) => a.from === 'v4');
    expect(failed && 'error' in failed && failed.error.code).toBe('ERR_REMOTE');
    await rejectsWith(client.ask('nobody', 1), 'ERR_NO_RESPONDERS');
    // Sharding: the same key reaches the same member of a queue group.
    const shards = await Promise.all(['s1', 's2', 's3'].map((n) => agent(b, n)));
    for (const s of shards) await s.subscribe('kv.get', () => s.name, { queue: 'kv' });
    const owner = new Map<string, unknown>();
    for (let k = 0; k < 30; k++) owner.set(`key${k}`, await client.ask('kv.get', k, { key: `key${k}` }));
    for (let k = 0; k < 30; k++)
      expect(await client.ask('kv.get', k, { key: `key${k}` })).toBe(owner.get(`key${k}`));
    expect(new Set(owner.values()).size).toBe(3);
    // A member leaving moves only its own keys.
    const gone = shards[0] as Agent;
    await gone.close();
    await eventually(() => !b.agents().includes(gone.name), 'the bus saw it leave');
    for (const [key, was] of owner) {
      const now = await client.ask('kv.get', 0, { key });
      if (was !== gone.name) expect(now).toBe(was);
      else expect(now).not.toBe(gone.name);
    }
  });

  it('aborts a request with its signal, and the agent working on it hears of it', async () => {
    const b = await bus();
    const client = await agent(b, 'client');
    const slow = await agent(b, 'slow');
    const heard: string[] = [];
    const working = (signal: AbortSignal) =>
      new Promise(() => signal.addEventListener('abort', () => heard.push((signal.reason as Error).message)));
    slow.onRequest((_m, info) => working(info.signal));
    slow.subscribe('work', (_m, info) => (info.signal ? working(info.signal) : null));
    const c = new AbortController();
    const pending = client.request('slow', 1, { signal: c.signal });
    await sleep(50);
    c.abort();
    await rejectsWith(pending, 'ERR_ABORTED');
    // Through the bus: the requester's stream reset, the bus's call to the agent reset.
    await eventually(() => heard.length === 1, 'the handler hears the abort');
    expect(heard[0]).toMatch(/stopped waiting/);
    const asking = new AbortController();
    const asked = client.ask('work', 1, { signal: asking.signal });
    await sleep(50);
    asking.abort();
    await rejectsWith(asked, 'ERR_ABORTED');
    await eventually(() => heard.length === 2, 'the subject handler hears the abort');
    const done = new AbortController();
    done.abort();
    await rejectsWith(client.request('slow', 1, { signal: done.signal }), 'ERR_ABORTED');
    await rejectsWith(client.ask('x', 1, { signal: done.signal }), 'ERR_ABORTED');
    slow.onRequest((m) => m);
    expect(await client.request('slow', 2)).toBe(2);
  });

  it('tells of agents joining and leaving, and hands out leases', async () => {
    const b = await bus();
    const busEvents: PresenceEvent[] = [];
    b.onJoin((e) => busEvents.push(e)).onLeave((e) => busEvents.push(e));
    const watcher = await agent(b, 'watcher');
    const events: PresenceEvent[] = [];
    watcher.onPresence((e) => events.push(e));
    await watcher.agents(); // the watch is in place
    const x = await agent(b, 'x');
    await eventually(() => events.length === 1, 'join');
    expect(await x.lease('db', 10_000)).toEqual({ granted: true, holder: 'x', remainingMs: 10_000 });
    const other = await watcher.lease('db', 1000);
    expect(other.granted).toBe(false);
    expect(other.holder).toBe('x');
    expect(await watcher.release('db')).toBe(false);
    await x.close();
    await eventually(() => events.length === 2, 'leave');
    expect(events).toEqual([
      { event: 'join', name: 'x' },
      { event: 'leave', name: 'x' },
    ]);
    // The holder left: the lease is free.
    expect((await watcher.lease('db', 50)).granted).toBe(true);
    expect(await watcher.release('db')).toBe(true);
    // A lease expires at its TTL.
    await watcher.lease('short', 50);
    const y = await agent(b, 'y');
    expect((await y.lease('short', 1000)).granted).toBe(false);
    await sleep(80);
    expect((await y.lease('short', 1000)).granted).toBe(true);
    expect(busEvents.map((e) => `${e.event}:${e.name}`)).toEqual([
      'join:watcher',
      'join:x',
      'leave:x',
      'join:y',
    ]);
  });

  it('sees a silent agent go after three keep-alives, and one slow agent holds up no other', async () => {
    const b = await bus({ keepAliveMs: 200 });
    const left: string[] = [];
    b.onLeave(({ name }) => left.push(name));
    // An agent process that dies without a word (no close frame): keep-alive finds out.
    const child = fixture('agent.ts', [`127.0.0.1:${b.port}`, 'doomed'], {
      QUICWIRE_CA: cert.cert,
      QUICWIRE_KEEPALIVE_MS: '200',
    });
    expect(await lineFrom(child)).toBe('READY');
    const client = await agent(b, 'client');
    expect(await client.request('doomed', 1)).toBe('doomed');
    child.kill('SIGKILL');
    await eventually(() => left.includes('doomed'), 'the bus dropped the silent agent', 5000);
    await rejectsWith(client.send('doomed', 1), 'ERR_NO_RESPONDERS');
    // A slow agent: its requests wait, another agent's go on meanwhile.
    const slow = await agent(b, 'slow');
    const fast = await agent(b, 'fast');
    const { held, release } = gate();
    slow.onRequest(async (m) => {
      await held;
      return m;
    });
    fast.onRequest((m) => m);
    const waiting = Array.from({ length: 100 }, (_, i) => client.request('slow', i));
    const quick = await Promise.all(Array.from({ length: 100 }, (_, i) => client.request('fast', i)));
    expect(quick[99]).toBe(99);
    release();
    expect((await Promise.all(waiting))[99]).toBe(99);
  });

  it('aborts sends: a held one is dropped, an aborted subscribe ends', async () => {
    const b = await bus();
    const port = b.port;
    // Bob is back well before Alice, who then finds him.
    const alice = await agent(b, 'alice', { reconnect: { initialDelayMs: 1000 }, connectTimeoutMs: 200 });
    const bob = await agent(b, 'bob', {
      reconnect: { initialDelayMs: 20, maxDelayMs: 50 },
      connectTimeoutMs: 200,
    });
    const got: unknown[] = [];
    bob.onMessage((m) => got.push(m));
    const done = new AbortController();
    done.abort();
    await rejectsWith(alice.send('bob', 0, { signal: done.signal }), 'ERR_ABORTED');
    await rejectsWith(alice.publish('x', 0, { signal: done.signal }), 'ERR_ABORTED');
    await rejectsWith(
      alice.subscribe('x', () => {}, { signal: done.signal }),
      'ERR_ABORTED',
    );
    expect(await bob.publish('x', 1)).toBe(0); // the aborted subscription is not there
    await b.close({ graceful: false });
    open.splice(open.indexOf(b), 1);
    await eventually(() => alice.state === 'reconnecting', 'the drop');
    const c = new AbortController();
    const dropped = alice.send('bob', 'dropped', { signal: c.signal });
    const kept = alice.send('bob', 'kept');
    c.abort();
    await rejectsWith(dropped, 'ERR_ABORTED');
    await bus({ port });
    await kept;
    expect(got).toEqual(['kept']);
  });

  it('reconnects after the bus restarts: name and subscriptions again, held sends delivered', async () => {
    let b = await bus();
    const port = b.port;
    // Bob is back well before Alice, who then finds him.
    const alice = await agent(b, 'alice', { reconnect: { initialDelayMs: 1000 } });
    const bob = await agent(b, 'bob', {
      reconnect: { initialDelayMs: 20, maxDelayMs: 50 },
      connectTimeoutMs: 100,
    });
    const got: unknown[] = [];
    bob.onMessage((m) => got.push(m));
    await bob.subscribe('news', (m) => got.push(`news:${m}`));
    const states: string[] = [];
    alice.onStateChange((s) => states.push(s));
    await b.close({ graceful: false });
    open.splice(open.indexOf(b), 1);
    await eventually(() => alice.state === 'reconnecting' && bob.state === 'reconnecting', 'both saw it go');
    // Held while the bus is away, delivered in order once both are back.
    const held = [
      alice.send('bob', 'held1'),
      alice.send('bob', 'held2', { unconfirmed: true }),
      alice.send('bob', 'held3'),
    ];
    b = await bus({ port });
    await Promise.all(held);
    expect(got).toEqual(['held1', 'held2', 'held3']);
    expect(await alice.publish('news', 'again')).toBe(1);
    expect(got.at(-1)).toBe('news:again');
    expect(states).toEqual(['reconnecting', 'connected']);
    expect(b.agents().sort()).toEqual(['alice', 'bob']);
  });

  it('holds a bounded number of sends while reconnecting, and closes when told not to reconnect', async () => {
    const b = await bus();
    const alice = await agent(b, 'alice', { bufferLimit: 2, reconnect: { initialDelayMs: 5000 } });
    const once = await agent(b, 'once', { reconnect: false });
    await b.close({ graceful: false });
    open.splice(open.indexOf(b), 1);
    await eventually(() => alice.state === 'reconnecting' && once.state === 'closed', 'the drop');
    const held = [alice.send('x', 1), alice.send('x', 2)].map((p) => rejectsWith(p, 'ERR_CONNECTION_CLOSED'));
    await rejectsWith(alice.send('x', 3), 'ERR_FLOW_CONTROL_PAUSED');
    await rejectsWith(once.send('x', 1), 'ERR_CONNECTION_CLOSED');
    await alice.close();
    await Promise.all(held);
  });
});
