// The inbox behind `receive()` on connections and agents.

import { describe, expect, it } from 'vitest';
import { QuicwireError } from '../ts/errors.js';
import { Inbox } from '../ts/inbox.js';
import { rejectsWith } from './helpers.js';

describe('inbox', () => {
  it('hands arrivals to waiting takers in order, and keeps the rest in order', async () => {
    const inbox = new Inbox<number>('test');
    const first = inbox.take();
    const second = inbox.take();
    inbox.put(1);
    inbox.put(2);
    inbox.put(3);
    expect([await first, await second, await inbox.take()]).toEqual([1, 2, 3]);
  });

  it('a taker that timed out takes nothing: the next arrival waits for the next take', async () => {
    const inbox = new Inbox<string>('a peer');
    const err = await rejectsWith(inbox.take(10), 'ERR_TIMEOUT');
    expect(err.message).toBe('no message from a peer within 10 ms');
    inbox.put('kept');
    expect(await inbox.take()).toBe('kept');
  });

  it('an arrival that could not be read rejects its taker, in its place', async () => {
    const inbox = new Inbox<string>('test');
    inbox.put('a');
    inbox.fail(new QuicwireError('ERR_DECODE', 'bad bytes'));
    inbox.put('b');
    expect(await inbox.take()).toBe('a');
    await rejectsWith(inbox.take(), 'ERR_DECODE');
    expect(await inbox.take()).toBe('b');
  });

  it('closing rejects the waiting takers; what was kept is still read first', async () => {
    const inbox = new Inbox<string>('test');
    const waiting = inbox.take();
    inbox.close(new QuicwireError('ERR_CONNECTION_CLOSED', 'gone'));
    await rejectsWith(waiting, 'ERR_CONNECTION_CLOSED');
    const kept = new Inbox<string>('test');
    kept.put('last');
    kept.close(new QuicwireError('ERR_CONNECTION_CLOSED', 'gone'));
    expect(await kept.take()).toBe('last');
    await rejectsWith(kept.take(), 'ERR_CONNECTION_CLOSED');
  });
});
