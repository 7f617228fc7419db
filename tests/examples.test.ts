// Every example in examples/ runs here, on each backend (the browser one in tests/shipping).
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';

describe('examples', () => {
  it("the README's quickstart runs", async () => {
    const { reply } = await import('../examples/quickstart.js');
    expect(reply).toEqual({ sum: 3 });
  });

  it('agent chat: every agent hears every other agent once', async () => {
    const { transcript } = await import('../examples/chat.js');
    expect(transcript).toEqual([
      'coder heard planner: hello from planner',
      'coder heard reviewer: hello from reviewer',
      'planner heard coder: hello from coder',
      'planner heard reviewer: hello from reviewer',
      'reviewer heard coder: hello from coder',
      'reviewer heard planner: hello from planner',
    ]);
  });

  it('agents: a planner hands tasks to a queue group of workers, in turn, and hears progress', async () => {
    const { summary } = await import('../examples/agents.js');
    expect(summary?.answers).toHaveLength(40);
    expect(summary?.answers[7]).toBe('TASK 7 DONE');
    expect(summary?.progress).toBe(40);
    expect(summary?.perWorker).toEqual({ 'worker-1': 10, 'worker-2': 10, 'worker-3': 10, 'worker-4': 10 });
  });

  it('workers: tasks spread over worker processes, one pooled connection each', async () => {
    const { summary } = await import('../examples/workers.js');
    expect(summary?.perWorker).toEqual([20, 20, 20]);
    expect(summary?.created).toBe(3);
    // Each answer is the right one for its task.
    const chain = (input: string) => {
      let d = input;
      for (let i = 0; i < 2000; i++) d = createHash('sha256').update(d).digest('hex');
      return d;
    };
    expect(summary?.digests[7]).toBe(chain('task-7'));
    expect(summary?.digests).toHaveLength(60);
  }, 60_000);
});
