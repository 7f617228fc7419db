// One benchmark client process: `node --import tsx benches/client.ts <transport> <scenario>
// <port> <server pid> [--quick]`. Prints one JSON line with the scenario's figures.
import { bulk, concurrency, FULL, memory, pingPong, QUICK, setup, small } from './scenarios.js';
import { transport } from './transports.js';

const [name, scenario, portArg, pidArg] = process.argv.slice(2);
const sizes = process.argv.includes('--quick') ? QUICK : FULL;
const tls = { cert: process.env.BENCH_CERT as string, key: process.env.BENCH_KEY as string };
const t = transport(name as string);
const port = Number(portArg);

async function run() {
  switch (scenario) {
    case 'setup':
      return setup(t, port, tls, sizes);
    case 'memory':
      return memory(t, port, tls, Number(pidArg), sizes);
  }
  const c = await t.connect(port, tls);
  try {
    switch (scenario) {
      case 'bulk':
        return await bulk(c, sizes);
      case 'small':
        return await small(c, sizes);
      case 'pingpong':
        return await pingPong(c, sizes);
      case 'concurrency':
        return await concurrency(c, sizes);
      default:
        throw new Error(`unknown scenario ${scenario}`);
    }
  } finally {
    await c.close();
  }
}

const figures = await run();
console.log(JSON.stringify(figures));
process.exit(0);
