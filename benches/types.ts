// The one small interface every transport implements for the benchmark: a server that counts
// messages and echoes requests, and a client that sends, requests, and streams bulk bytes.

/** The server's address: loopback, or the server's namespace over a lossy link (loss.ts). */
export const HOST = process.env.BENCH_HOST ?? '127.0.0.1';

export interface Tls {
  cert: string;
  key: string;
}

export interface BenchServer {
  port: number;
  close(): Promise<void>;
}

export interface BenchClient {
  /** Sends one message; the promise settles when the transport can take more (backpressure). */
  send(payload: Uint8Array): Promise<void> | undefined;
  /** Resolves once the transport has nothing of ours left queued in user space. */
  flush(): Promise<void>;
  /** A request on its own stream where the transport has streams; resolves with the echo. */
  request(payload: Uint8Array): Promise<Uint8Array>;
  /** Sends up to `count` chunks on one stream, stopping early once `until` (a
   *  performance.now() time) passes; resolves with the chunks the server confirmed. */
  bulk(chunk: Uint8Array, count: number, until: number): Promise<number>;
  /** How many messages the server has received on this connection so far. */
  received(): Promise<number>;
  close(): Promise<void>;
}

export interface Transport {
  name: string;
  /** What it is, for the results table. */
  describe: string;
  listen(tls: Tls): Promise<BenchServer>;
  connect(port: number, tls: Tls): Promise<BenchClient>;
}
