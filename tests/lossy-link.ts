// A lossy network of our own: two network namespaces joined by a veth pair, with nftables
// dropping a share of the IP packets each side receives, at random, and optionally a rate
// limit or a block on all UDP. Used by the packet-loss test and the loss and priority benchmarks. Needs root
// (CAP_NET_ADMIN), `ip`, `nft` and, for a rate, `tc`.

import { type ChildProcess, execFileSync, type SpawnOptions, spawn } from 'node:child_process';

export interface LossyLink {
  /** The server side's address, inside its namespace. */
  serverIp: string;
  clientIp: string;
  /** Spawns `command` inside the server's or the client's namespace. */
  spawn(side: 'server' | 'client', command: string, args: string[], options?: SpawnOptions): ChildProcess;
  /** Packets dropped so far, both directions. */
  dropped(): number;
  /** Gives the client another address and takes its old one away, as a network change
   *  does: its sockets stay, and what it sends comes from the new address. */
  moveClient(): string;
  /** Removes both namespaces (and with them the veth pair and the rules). */
  close(): void;
}

/** Why this machine cannot build a lossy link, or undefined when it can. */
export function lossyLinkUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces and nftables)';
  for (const tool of ['ip', 'nft']) {
    try {
      execFileSync(tool, ['-V'], { stdio: 'ignore' });
    } catch {
      return `needs \`${tool}\` (apt-get install ${tool === 'ip' ? 'iproute2' : 'nftables'})`;
    }
  }
  return undefined;
}

let made = 0;

export interface LinkShape {
  /** Each side sends at most this many Mbit/s (a token bucket of 25 ms of queue). */
  rateMbit?: number;
  /** Every UDP packet is dropped, as on networks that allow only TCP. */
  blockUdp?: boolean;
}

export function lossyLink(lossPercent: number, shape: LinkShape = {}): LossyLink {
  if (!(lossPercent >= 0 && lossPercent < 100)) throw new Error(`loss ${lossPercent}% out of range`);
  // Short unique names: interface names are capped at 15 bytes.
  const tag = `qw${process.pid}x${made++}`;
  const ns = { server: `${tag}s`, client: `${tag}c` };
  const serverIp = '10.77.0.1';
  const clientIp = '10.77.0.2';
  const movedIp = '10.77.0.3';
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const inNs = (name: string, cmd: string, args: string[], input?: string) =>
    execFileSync('ip', ['netns', 'exec', name, cmd, ...args], { input, encoding: 'utf8' });
  const close = () => {
    for (const name of Object.values(ns)) {
      try {
        ip('netns', 'del', name);
      } catch {}
    }
    process.off('exit', close);
  };
  process.on('exit', close);
  try {
    ip('netns', 'add', ns.server);
    ip('netns', 'add', ns.client);
    ip('link', 'add', `${tag}a`, 'netns', ns.server, 'type', 'veth', 'peer', `${tag}b`, 'netns', ns.client);
    for (const [name, dev, addr] of [
      [ns.server, `${tag}a`, serverIp],
      [ns.client, `${tag}b`, clientIp],
    ] as const) {
      // A /29, so that the client may move to another address of the link.
      inNs(name, 'ip', ['addr', 'add', `${addr}/29`, 'dev', dev]);
      // Deleting the first address must not take the second (the move) with it.
      inNs(name, 'sysctl', ['-qw', `net.ipv4.conf.${dev}.promote_secondaries=1`]);
      inNs(name, 'ip', ['link', 'set', dev, 'up']);
      inNs(name, 'ip', ['link', 'set', 'lo', 'up']);
      if (shape.rateMbit) {
        const rate = `${shape.rateMbit}mbit`;
        inNs(name, 'tc', [
          'qdisc',
          'add',
          'dev',
          dev,
          'root',
          'tbf',
          'rate',
          rate,
          'burst',
          '128kb',
          'latency',
          '25ms',
        ]);
      }
      // Every IP packet arriving (UDP and TCP alike) is dropped with probability N %.
      inNs(
        name,
        'nft',
        ['-f', '-'],
        `table inet quicwire_loss {
  chain input {
    type filter hook input priority 0; policy accept;
    iifname "${dev}" numgen random mod 100 < ${lossPercent} counter drop${
      shape.blockUdp
        ? `
    iifname "${dev}" meta l4proto udp counter drop`
        : ''
    }
  }
}
`,
      );
    }
  } catch (err) {
    close();
    throw new Error(`building the lossy link failed: ${(err as { stderr?: Buffer }).stderr ?? err}`);
  }
  return {
    serverIp,
    clientIp,
    spawn: (side, command, args, options = {}) =>
      spawn('ip', ['netns', 'exec', ns[side], command, ...args], options),
    moveClient: () => {
      inNs(ns.client, 'ip', ['addr', 'add', `${movedIp}/29`, 'dev', `${tag}b`]);
      inNs(ns.client, 'ip', ['addr', 'del', `${clientIp}/29`, 'dev', `${tag}b`]);
      return movedIp;
    },
    dropped: () =>
      Object.values(ns).reduce((sum, name) => {
        const listing = inNs(name, 'nft', ['list', 'chain', 'inet', 'quicwire_loss', 'input']);
        const counts = [...listing.matchAll(/counter packets (\d+)/g)].map((m) => Number(m[1]));
        return counts.reduce((a, b) => a + b, sum);
      }, 0),
    close,
  };
}
