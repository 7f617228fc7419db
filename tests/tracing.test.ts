// OpenTelemetry spans for requests (`tracing: true`): a CLIENT span per request, a SERVER
// span per answer, the trace context carried in the request (protocol version 2) so the
// server's span is the child of the client's, and the handler running inside it.

import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectedPair, echoServer, rejectsWith, transport } from './helpers.js';

const exporter = new InMemorySpanExporter();

beforeAll(() => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(
    new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
  );
});

afterEach(() => exporter.reset());

const spans = (kind: SpanKind) => exporter.getFinishedSpans().filter((s) => s.kind === kind);

describe('tracing', () => {
  it("makes the server's span a child of the client's, and runs the handler inside it", async () => {
    const { server, conn } = await connectedPair({ tracing: true }, { tracing: true });
    const inHandler: string[] = [];
    server.onRequest((msg) => {
      inHandler.push(trace.getActiveSpan()?.spanContext().spanId ?? 'none');
      return msg;
    });
    const tracer = trace.getTracer('test');
    await tracer.startActiveSpan('caller', async (caller) => {
      expect(await conn.request({ n: 1 })).toEqual({ n: 1 });
      caller.end();
    });
    const caller = exporter.getFinishedSpans().find((s) => s.name === 'caller');
    const [client] = spans(SpanKind.CLIENT);
    const [server1] = spans(SpanKind.SERVER);
    expect(client?.name).toBe('quicwire request');
    expect(client?.parentSpanContext?.spanId).toBe(caller?.spanContext().spanId);
    expect(server1?.spanContext().traceId).toBe(caller?.spanContext().traceId);
    expect(server1?.parentSpanContext?.spanId).toBe(client?.spanContext().spanId);
    expect(server1?.parentSpanContext?.isRemote).toBe(true);
    expect(inHandler).toEqual([server1?.spanContext().spanId]);
    expect(client?.attributes['rpc.system']).toBe('quicwire');
    expect(client?.attributes['server.port']).toBe(server.port);
    expect(server1?.attributes['client.address']).toBe('127.0.0.1');
  });

  it('marks both spans failed when the handler fails', async () => {
    const { server, conn } = await connectedPair({ tracing: true }, { tracing: true });
    server.onRequest(() => {
      throw new Error('no such task');
    });
    await rejectsWith(conn.request({}), 'ERR_REMOTE');
    const [client] = spans(SpanKind.CLIENT);
    const [answered] = spans(SpanKind.SERVER);
    expect(client?.status).toEqual({ code: SpanStatusCode.ERROR, message: 'no such task' });
    expect(client?.attributes['error.type']).toBe('ERR_REMOTE');
    expect(answered?.status.code).toBe(SpanStatusCode.ERROR);
    expect(answered?.parentSpanContext?.spanId).toBe(client?.spanContext().spanId);
  });

  it('traces one side alone: a traced client of an untraced server, and the reverse', async () => {
    const plain = await echoServer();
    const traced = transport({ tracing: true });
    const c1 = await traced.connect('127.0.0.1', plain.port);
    expect(await c1.request({ a: 1 })).toEqual({ a: 1 });
    expect(spans(SpanKind.CLIENT)).toHaveLength(1);
    expect(spans(SpanKind.SERVER)).toHaveLength(0);
    exporter.reset();
    const tracedServer = await echoServer({ tracing: true });
    const c2 = await transport().connect('127.0.0.1', tracedServer.port);
    expect(await c2.request({ b: 2 })).toEqual({ b: 2 });
    const [root] = spans(SpanKind.SERVER);
    expect(root?.parentSpanContext).toBeUndefined();
    expect(spans(SpanKind.CLIENT)).toHaveLength(0);
  });

  it('rejects a tracing option that is not a boolean', async () => {
    expect(() => transport({ tracing: 'yes' as unknown as boolean })).toThrow(/tracing must be a boolean/);
  });
});
