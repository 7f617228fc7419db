// quicwire for browsers and edge runtimes: the wasm engine only. They have no UDP: a client
// with `transport: 'tcp'` reaches a quicwire server (`tcp: true`) over a WebSocket to its
// port (ts/carrier.ts); otherwise datagrams travel over a MemoryNetwork (engines in the same
// page or worker), or over any carrier you pass as `initWasm(url, { network })`. Built by
// rollup into dist/browser/ with the .wasm beside the bundle.

import type { StreamNetwork } from './carrier.js';
import { QuicwireError } from './errors.js';
import { MemoryNetwork } from './memory.js';
import { type Platform, urlHost, usePlatform } from './platform.js';

/** WebSockets as the streams that carry QUIC: `ws://host:port/` (`wss://` from a page
 *  served over https, which may open no other), binary messages holding the same frames as
 *  a TCP tunnel (the packets inside are QUIC's, encrypted and checked). */
const webSockets: StreamNetwork = {
  connect(host, port, events) {
    const secure = globalThis.location?.protocol === 'https:';
    const ws = new WebSocket(`${secure ? 'wss' : 'ws'}://${urlHost(host)}:${port}/`);
    ws.binaryType = 'arraybuffer';
    let waiting: Uint8Array[] = [];
    let waitingBytes = 0;
    ws.onopen = () => {
      for (const data of waiting) ws.send(data);
      waiting = [];
      waitingBytes = 0;
    };
    ws.onmessage = (e) => events.data(new Uint8Array(e.data as ArrayBuffer));
    ws.onclose = () => events.closed();
    return {
      write(data) {
        if (ws.readyState === WebSocket.OPEN) {
          ws.send(data);
        } else if (ws.readyState === WebSocket.CONNECTING) {
          waiting.push(data);
          waitingBytes += data.length;
        }
      },
      get queued() {
        return ws.bufferedAmount + waitingBytes;
      },
      close: () => ws.close(),
    };
  },
  listen() {
    throw new QuicwireError('ERR_INVALID_ARGUMENT', 'a browser cannot listen for connections');
  },
};

const browserPlatform: Platform = {
  loadNative() {
    throw new QuicwireError(
      'ERR_BACKEND_UNAVAILABLE',
      'this runtime has no native addon: call `await initWasm()` to use the wasm engine',
    );
  },
  network: new MemoryNetwork(),
  streams: webSockets,
  async wasmSource(input) {
    return input ?? new URL('./quicwire_wasm_bg.wasm', import.meta.url);
  },
  env: () => undefined,
  warn: (message) => console.warn(message),
  openTelemetry() {
    throw new QuicwireError('ERR_INVALID_ARGUMENT', 'tracing is not available in browsers yet');
  },
};

usePlatform(browserPlatform);

export * from './api.js';
