// generateDevCert: an ECDSA P-256 certificate whose `hash` is its SHA-256, and that with
// `validDays` is valid from now for that long, as browsers require of a certificate they
// trust by hash (WebTransport's serverCertificateHashes: 14 days at most).

import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { generateDevCert, initWasm } from '../ts/index.js';

await initWasm();

describe('generateDevCert', () => {
  it("gives the certificate's SHA-256 as hash, and an ECDSA P-256 key", () => {
    const dev = generateDevCert(['localhost', '127.0.0.1']);
    const x509 = new X509Certificate(dev.cert);
    expect(dev.hash).toBe(x509.fingerprint256.replaceAll(':', '').toLowerCase());
    expect(x509.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(x509.subjectAltName).toContain('DNS:localhost');
    // Spread, it is a server's cert and key, and nothing else.
    expect(Object.keys({ ...dev })).toEqual(['cert', 'key']);
    // Without validDays it does not expire in any lifetime of a test.
    expect(new Date(x509.validTo).getFullYear()).toBeGreaterThan(3000);
  });

  it('with validDays, is valid from now for that many days', () => {
    const dev = generateDevCert(['localhost'], { validDays: 14 });
    const x509 = new X509Certificate(dev.cert);
    const from = new Date(x509.validFrom).getTime();
    const to = new Date(x509.validTo).getTime();
    expect(to - from).toBe(14 * 86_400_000);
    expect(Math.abs(from - Date.now())).toBeLessThan(5 * 60_000);
  });
});
