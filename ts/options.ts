// Type checks of user options. Ranges are checked once, by the engine's core
// (quicwire-core's TransportConfig::validate), so every backend rejects the same values.

import type { EngineTransportOptions } from './engine.js';
import { invalidArgument } from './errors.js';
import { CONGESTION_CONTROLLERS } from './layout.js';
import { platform } from './platform.js';
import type { Encoding, LimitOptions } from './types.js';

const ENCODINGS: readonly Encoding[] = ['msgpack', 'json', 'raw'];

export function checkKeys(what: string, options: object, allowed: readonly string[]): void {
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) {
      throw invalidArgument(`unknown ${what} option ${JSON.stringify(key)}; known: ${allowed.join(', ')}`);
    }
  }
}

export function checkObject(what: string, value: unknown): asserts value is object {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalidArgument(`${what} must be an options object`);
  }
}

/** A whole number within what the engine's option types hold. */
export function checkInteger(name: string, value: unknown, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw invalidArgument(`${name} must be a non-negative integer, got ${String(value)}`);
  }
  return value;
}

export function checkString(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw invalidArgument(`${name} must be a non-empty string`);
  }
  return value;
}

export function checkEncoding(name: string, value: unknown): Encoding {
  if (!ENCODINGS.includes(value as Encoding)) {
    throw invalidArgument(`${name} must be one of ${ENCODINGS.join(', ')}, got ${String(value)}`);
  }
  return value as Encoding;
}

export const LIMIT_KEYS = [
  'maxMessageSize',
  'maxConcurrentStreams',
  'keepAliveMs',
  'requestTimeoutMs',
  'congestionControl',
  'keyLog',
  'qlog',
  'earlyData',
  'tracing',
];

const U32 = 0xffff_ffff;

export function engineLimits(
  o: LimitOptions & { maxConnections?: number; idleTimeoutMs?: number; connectTimeoutMs?: number },
): EngineTransportOptions {
  const out: EngineTransportOptions = {};
  if (o.maxMessageSize !== undefined) out.maxMessageSize = checkInteger('maxMessageSize', o.maxMessageSize);
  if (o.maxConcurrentStreams !== undefined)
    out.maxConcurrentStreams = checkInteger('maxConcurrentStreams', o.maxConcurrentStreams, U32);
  if (o.keepAliveMs !== undefined) out.keepAliveMs = checkInteger('keepAliveMs', o.keepAliveMs);
  if (o.requestTimeoutMs !== undefined)
    out.requestTimeoutMs = checkInteger('requestTimeoutMs', o.requestTimeoutMs);
  if (o.maxConnections !== undefined)
    out.maxConnections = checkInteger('maxConnections', o.maxConnections, U32);
  if (o.idleTimeoutMs !== undefined) out.idleTimeoutMs = checkInteger('idleTimeoutMs', o.idleTimeoutMs);
  if (o.connectTimeoutMs !== undefined)
    out.connectTimeoutMs = checkInteger('connectTimeoutMs', o.connectTimeoutMs);
  if (o.keyLog !== undefined) {
    if (typeof o.keyLog !== 'function') throw invalidArgument('keyLog must be a function (line) => void');
    out.keyLog = 1;
  }
  if (o.qlog !== undefined) {
    if (typeof o.qlog !== 'function')
      throw invalidArgument('qlog must be a function (records, connectionId) => void');
    out.qlog = 1;
  }
  if (o.earlyData !== undefined) {
    if (typeof o.earlyData !== 'boolean') throw invalidArgument('earlyData must be a boolean');
    out.earlyData = o.earlyData ? 1 : 0;
  }
  if (o.congestionControl !== undefined) {
    const index = CONGESTION_CONTROLLERS.indexOf(o.congestionControl);
    if (index < 0) {
      throw invalidArgument(
        `congestionControl must be one of ${CONGESTION_CONTROLLERS.join(', ')}, got ${String(o.congestionControl)}`,
      );
    }
    out.congestionControl = index;
  }
  return out;
}

export const DEFAULT_SEND_BUFFER_HIGH = 8 * 1024 * 1024;

export function sendBufferHigh(value: unknown): number {
  if (value === undefined) return DEFAULT_SEND_BUFFER_HIGH;
  const v = checkInteger('sendBufferHigh', value);
  if (v < 1024) throw invalidArgument(`sendBufferHigh must be at least 1024, got ${v}`);
  return v;
}

let warnedInsecure = false;

/** `insecure: true` turns certificate checks off: say so, once per process. */
export function warnInsecure(): void {
  if (warnedInsecure) return;
  warnedInsecure = true;
  platform().warn('quicwire: insecure: true, server certificates are NOT verified', 'QUICWIRE_INSECURE');
}
