// Backend loading, in fresh processes (a process keeps the engine it loaded).

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

async function inChild(backend: string, script: string): Promise<string> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    env: { ...process.env, QUICWIRE_BACKEND: backend },
  });
  return stdout.trim();
}

describe('backend loading', () => {
  it('initWasm rejects unusable input with ERR_BACKEND_UNAVAILABLE, and a retry can succeed', async () => {
    const out = await inChild(
      'wasm',
      `import { backend, initWasm } from './ts/index.ts';
       try { await initWasm(new Uint8Array([0, 1, 2, 3])); console.log('resolved'); }
       catch (e) { console.log(e.code); }
       await initWasm();
       console.log(backend());`,
    );
    expect(out.split('\n')).toEqual(['ERR_BACKEND_UNAVAILABLE', 'wasm']);
  });

  it('using the wasm backend before initWasm is ERR_NOT_INITIALIZED', async () => {
    const out = await inChild(
      'wasm',
      `import { QuicTransport } from './ts/index.ts';
       try { new QuicTransport(); console.log('created'); } catch (e) { console.log(e.code); }`,
    );
    expect(out).toBe('ERR_NOT_INITIALIZED');
  });
});
