// OpenTelemetry spans for requests (the `tracing` option), through @opentelemetry/api, an
// optional peer dependency loaded when an endpoint asks for it. A request's CLIENT span is a
// child of the caller's active span; its context crosses the wire in a TRACE frame
// (protocol version 2, docs/PROTOCOL.md 6b), and the responder's SERVER span is its child,
// with the handler running inside it. Peers of version 1 get the request without it.

import type * as Api from '@opentelemetry/api';
import type { Connection } from './connection.js';
import { QuicwireError } from './errors.js';
import { platform } from './platform.js';

export type OpenTelemetryApi = typeof Api;

/** The binary trace context: version, trace id, span id, flags, then tracestate as text. */
const HEAD = 1 + 16 + 8 + 1;
const text = new TextEncoder();
const untext = new TextDecoder();

/** Starts and ends an endpoint's spans. */
export class Tracing {
  readonly #api: OpenTelemetryApi;
  readonly #tracer: Api.Tracer;

  constructor(api: OpenTelemetryApi) {
    this.#api = api;
    this.#tracer = api.trace.getTracer('quicwire');
  }

  /** The tracing an endpoint's `tracing` option asks for (none when false or absent). */
  static of(option: unknown): Tracing | undefined {
    if (option === undefined || option === false) return undefined;
    if (option !== true) {
      throw new QuicwireError('ERR_INVALID_ARGUMENT', `tracing must be a boolean, got ${String(option)}`);
    }
    return new Tracing(platform().openTelemetry());
  }

  /** Runs `send` inside a CLIENT span, with the span's context to carry (none when it is
   *  not sampled anywhere: an invalid context), and ends the span with its outcome. */
  async request<T>(
    connection: Connection,
    send: (context: Uint8Array | undefined) => Promise<T>,
  ): Promise<T> {
    const { trace, context, SpanKind } = this.#api;
    const span = this.#tracer.startSpan('quicwire request', {
      kind: SpanKind.CLIENT,
      attributes: attributes(connection, 'server'),
    });
    const carried = trace.isSpanContextValid(span.spanContext()) ? encode(span.spanContext()) : undefined;
    try {
      const answer = await context.with(trace.setSpan(context.active(), span), () => send(carried));
      span.end();
      return answer;
    } catch (err) {
      this.#failed(span, err);
      throw err;
    }
  }

  /** Runs a request's handler inside a SERVER span, the child of the requester's span when
   *  its context came with the request; ends the span with the handler's outcome. */
  async answer<T>(
    connection: Connection,
    carried: Uint8Array | undefined,
    handle: () => Promise<T>,
  ): Promise<T> {
    const { trace, context, SpanKind } = this.#api;
    const remote = carried && this.#decode(carried);
    const parent = remote ? trace.setSpanContext(context.active(), remote) : context.active();
    const span = this.#tracer.startSpan(
      'quicwire request',
      { kind: SpanKind.SERVER, attributes: attributes(connection, 'client') },
      parent,
    );
    try {
      const answer = await context.with(trace.setSpan(parent, span), handle);
      span.end();
      return answer;
    } catch (err) {
      this.#failed(span, err);
      throw err;
    }
  }

  #failed(span: Api.Span, err: unknown): void {
    const code = err instanceof QuicwireError ? err.code : 'ERR_REMOTE';
    span.setAttribute('error.type', code);
    span.setStatus({ code: this.#api.SpanStatusCode.ERROR, message: (err as Error)?.message ?? String(err) });
    span.end();
  }

  /** A carried context, or undefined when it is not one this version reads. */
  #decode(bytes: Uint8Array): Api.SpanContext | undefined {
    if (bytes.length < HEAD || bytes[0] !== 0) return undefined;
    const hex = (from: number, to: number) =>
      Array.from(bytes.subarray(from, to), (b) => b.toString(16).padStart(2, '0')).join('');
    const state = bytes.length > HEAD ? untext.decode(bytes.subarray(HEAD)) : '';
    const context: Api.SpanContext = {
      traceId: hex(1, 17),
      spanId: hex(17, 25),
      traceFlags: bytes[25] as number,
      isRemote: true,
      ...(state && this.#api.createTraceState && { traceState: this.#api.createTraceState(state) }),
    };
    return this.#api.trace.isSpanContextValid(context) ? context : undefined;
  }
}

/** A span context in the wire's binary form (W3C Trace Context's fields). */
function encode(span: Api.SpanContext): Uint8Array {
  const state = span.traceState ? text.encode(span.traceState.serialize()).subarray(0, 512) : undefined;
  const out = new Uint8Array(HEAD + (state?.length ?? 0));
  for (let i = 0; i < 16; i++) out[1 + i] = Number.parseInt(span.traceId.slice(2 * i, 2 * i + 2), 16);
  for (let i = 0; i < 8; i++) out[17 + i] = Number.parseInt(span.spanId.slice(2 * i, 2 * i + 2), 16);
  out[25] = span.traceFlags & 0xff;
  if (state) out.set(state, HEAD);
  return out;
}

/** OpenTelemetry's RPC and network attributes of a request on `connection`. */
function attributes(connection: Connection, peer: 'server' | 'client'): Api.Attributes {
  const at = connection.peer.lastIndexOf(':');
  return {
    'rpc.system': 'quicwire',
    [`${peer}.address`]: connection.peer.slice(0, at).replace(/^\[|\]$/g, ''),
    [`${peer}.port`]: Number(connection.peer.slice(at + 1)),
    'network.transport': connection.carrier === 'tcp' ? 'tcp' : 'udp',
    'quicwire.connection.id': connection.id,
  };
}
