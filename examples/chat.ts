// Agent chat: a hub relays every agent's message to all the others, over one QUIC connection
// per agent. Run: `npx tsx examples/chat.ts`.
import { type Connection, generateDevCert, initWasm, QuicServer, QuicTransport } from 'quicwire';

interface Line {
  from: string;
  text: string;
}

await initWasm(); // a no-op on the native backend
const { cert, key } = generateDevCert();
const hub = await QuicServer.listen({ host: '127.0.0.1', port: 0, cert, key });
const names = new Map<Connection, string>();
hub.onRequest((msg, peer) => {
  // An agent joins by name with a request, so it knows the hub has it before it talks.
  names.set(peer, (msg as { join: string }).join);
  return { members: [...names.values()] };
});
hub.onMessage((msg, peer) => {
  const line: Line = { from: names.get(peer) ?? peer.peer, text: (msg as { text: string }).text };
  // Relay to everyone else. Each send resolves once that agent has the line, or rejects if
  // the agent left before confirming it: then there is no one left to tell.
  for (const p of hub.peers()) if (p !== peer) p.send(line).catch(() => {});
});

const agents = ['planner', 'coder', 'reviewer'];
const transcript: string[] = [];
const sessions = await Promise.all(
  agents.map(async (name) => {
    const t = new QuicTransport({ ca: cert });
    const conn = await t.connect('127.0.0.1', hub.port);
    await t.request(conn, { join: name });
    return { name, t, conn };
  }),
);

// Everyone speaks once, then reads what the other two said.
await Promise.all(sessions.map(({ name, conn }) => conn.send({ text: `hello from ${name}` })));
for (const { name, conn } of sessions) {
  for (let i = 0; i < agents.length - 1; i++) {
    const line = (await conn.receive({ timeoutMs: 5000 })) as Line;
    transcript.push(`${name} heard ${line.from}: ${line.text}`);
  }
}
console.log(transcript.sort().join('\n'));

for (const { t } of sessions) await t.close();
await hub.close();

export { transcript };
