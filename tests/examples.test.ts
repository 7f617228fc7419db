import { describe, expect, it } from 'vitest';

describe('examples', () => {
  it("the README's quickstart runs", async () => {
    const { reply } = await import('../examples/quickstart.js');
    expect(reply).toEqual({ sum: 3 });
  });
});
