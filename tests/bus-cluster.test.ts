// Two bus nodes sharing one namespace through a nats-server on loopback (Debian's
// nats-server; .ci/run installs it and sets QUICWIRE_REQUIRE_NATS).
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, type PresenceEvent, QuicBus } from '../ts/index.js';
import { cert, eventually, rejectsWith } from './helpers.js';

function hasNats(): boolean {
  try {
    execFileSync('nats-server', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    if (process.env.QUICWIRE_REQUIRE_NATS)
      throw new Error('nats-server is missing (apt install nats-server)');
    return false;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

describe.runIf(hasNats())('a bus cluster through NATS', () => {
  let nats: ChildProcess;
  let servers = '';
  const open: { close(): Promise<void> }[] = [];

  beforeAll(async () => {
    const port = await freePort();
    servers = `nats://127.0.0.1:${port}`;
    nats = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port)], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    await new Promise<void>((resolve, reject) => {
      let err = '';
      nats.stderr?.on('data', (d) => {
        err += d;
        if (err.includes('Server is ready')) resolve();
      });
      nats.once('exit', (code) => reject(new Error(`nats-server exited with ${code}: ${err}`)));
    });
  });

  afterAll(async () => {
    while (open.length > 0) await open.pop()?.close();
    nats.kill();
  });

  it('routes by name and subject between agents on different nodes', async () => {
    const prefix = `t${Date.now()}`;
    const listen = async () => {
      const b = await QuicBus.listen({ cert: cert.cert, key: cert.key, cluster: { servers, prefix } });
      open.push(b);
      return b;
    };
    const [one, two] = [await listen(), await listen()];
    const agent = async (b: QuicBus, name: string) => {
      const a = await Agent.connect(`127.0.0.1:${b.port}`, { ca: cert.cert, name });
      open.push(a);
      return a;
    };
    const events: PresenceEvent[] = [];
    one.onJoin((e) => events.push(e));
    const alice = await agent(one, 'alice');
    const bob = await agent(two, 'bob');
    // Each node hears of the other's agents.
    await eventually(() => one.agents().includes('bob') && two.agents().includes('alice'), 'state');
    expect(events.map((e) => e.name).sort()).toEqual(['alice', 'bob']);
    // By name, both ways: a send resolves once the other node's agent has it.
    const got: unknown[] = [];
    bob.onMessage((m, { from }) => got.push([from, m]));
    bob.onRequest((m) => ({ echo: m }));
    await alice.send('bob', 'hi');
    expect(got).toEqual([['alice', 'hi']]);
    expect(await alice.request('bob', 42)).toEqual({ echo: 42 });
    await Promise.all(Array.from({ length: 200 }, (_, i) => alice.send('bob', i)));
    expect(got).toHaveLength(201);
    bob.onRequest(() => {
      throw new Error('nope');
    });
    expect((await rejectsWith(alice.request('bob', 1), 'ERR_REMOTE')).message).toContain('nope');
    await rejectsWith(alice.send('nobody', 1), 'ERR_NO_RESPONDERS');
    // A name taken on one node is taken on the other.
    await rejectsWith(agent(two, 'alice'), 'ERR_NAME_TAKEN');
    // Subjects: subscribers on both nodes; a queue group spanning them.
    const carol = await agent(two, 'carol');
    const heard: string[] = [];
    await alice.subscribe('news.*', (m) => heard.push(`alice:${m}`));
    await carol.subscribe('news.>', (m) => heard.push(`carol:${m}`));
    await alice.subscribe('jobs', (m) => `alice did ${m}`, { queue: 'w' });
    await carol.subscribe('jobs', (m) => `carol did ${m}`, { queue: 'w' });
    await eventually(() => one.agents().includes('carol'), 'carol on node one');
    const dan = await agent(one, 'dan');
    // Node one learns of carol's subscriptions with node two's next state.
    let count = 0;
    for (let i = 0; i < 50 && count < 2; i++) {
      count = await dan.publish('news.today', i);
      if (count < 2) await new Promise((r) => setTimeout(r, 50));
    }
    expect(count).toBe(2);
    const answers = new Set<string>();
    for (let i = 0; i < 6; i++) answers.add(((await dan.ask('jobs', i)) as string).split(' ')[0] as string);
    expect([...answers].sort()).toEqual(['alice', 'carol']);
    // A quorum across nodes.
    await bob.subscribe('vote', () => 'bob');
    await dan.subscribe('vote', () => 'dan');
    let quorum: string[] = [];
    for (let i = 0; i < 50 && quorum.length < 2; i++) {
      quorum = await dan
        .quorum('vote', 'q', { threshold: 2 })
        .then((a) => a.map((x) => x.from).sort())
        .catch(() => []);
      if (quorum.length < 2) await new Promise((r) => setTimeout(r, 50));
    }
    expect(quorum).toEqual(['bob', 'dan']);
    // An agent leaving one node leaves the other's view.
    await bob.close();
    await eventually(() => !one.agents().includes('bob'), 'bob gone from node one');
    // A node closing takes its agents out of the others' view.
    await two.close();
    await eventually(() => !one.agents().includes('carol'), 'node two gone');
  });

  it('refuses an unreachable NATS with ERR_IO', async () => {
    const port = await freePort();
    await rejectsWith(
      QuicBus.listen({ cert: cert.cert, key: cert.key, cluster: { servers: `nats://127.0.0.1:${port}` } }),
      'ERR_IO',
    );
  });
});
