// Agents on a bus: a planner hands tasks to a pool of workers through a queue group, each
// task to one worker in turn; workers report progress on a subject the planner follows.
// Run: `npx tsx examples/agents.ts`.
import { Agent, generateDevCert, initWasm, QuicBus } from 'quicwire';

await initWasm(); // a no-op on the native backend

interface Task {
  id: number;
  words: string[];
}

const TASKS = 40;
const WORKERS = 4;

const { cert, key } = generateDevCert();
const bus = await QuicBus.listen({ host: '127.0.0.1', port: 0, cert, key });
const at = `127.0.0.1:${bus.port}`;

// The workers: each joins the queue group "builders" on the subject "tasks.build".
const workers = await Promise.all(
  Array.from({ length: WORKERS }, async (_, i) => {
    const worker = await Agent.connect(at, { ca: cert, name: `worker-${i + 1}` });
    await worker.subscribe(
      'tasks.build',
      async (message) => {
        const task = message as Task;
        await new Promise((r) => setTimeout(r, 5)); // the work
        await worker.publish(`progress.${worker.name}`, { id: task.id });
        return task.words.map((w) => w.toUpperCase()).join(' ');
      },
      { queue: 'builders' },
    );
    return worker;
  }),
);

// The planner: follows progress, then hands out the tasks, 8 at a time.
const planner = await Agent.connect(at, { ca: cert, name: 'planner' });
const perWorker: Record<string, number> = {};
let progress = 0;
await planner.subscribe('progress.>', (_message, { from }) => {
  progress++;
  perWorker[from] = (perWorker[from] ?? 0) + 1;
  if (progress % 10 === 0) console.log(`progress: ${progress}/${TASKS} tasks done`);
});
console.log(`bus on ${at}: ${(await planner.agents()).sort().join(', ')}`);

const started = performance.now();
const answers: string[] = new Array(TASKS);
let next = 0;
await Promise.all(
  Array.from({ length: 8 }, async () => {
    while (next < TASKS) {
      const id = next++;
      const task: Task = { id, words: ['task', String(id), 'done'] };
      answers[id] = (await planner.ask('tasks.build', task, { timeoutMs: 5000 })) as string;
    }
  }),
);
const ms = performance.now() - started;
// Progress events go out before each answer, so they are all in by now.
console.log(`${TASKS} tasks in ${ms.toFixed(0)} ms; per worker: ${JSON.stringify(perWorker)}`);

for (const a of [planner, ...workers]) await a.close();
await bus.close();

/** What the planner saw (for the example's test). */
export const summary = { answers, perWorker, progress };
