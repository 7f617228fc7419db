// One benchmark server process: `node --import tsx benches/server.ts <transport>`.
// Prints `READY <port>` once listening; stops on SIGTERM. TLS material comes in env.
import { transport } from './transports.js';

const t = transport(process.argv[2] as string);
const server = await t.listen({
  cert: process.env.BENCH_CERT as string,
  key: process.env.BENCH_KEY as string,
});
console.log(`READY ${server.port}`);
process.once('SIGTERM', () => {
  void server.close().finally(() => process.exit(0));
});
