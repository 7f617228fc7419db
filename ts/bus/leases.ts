// Leases: a resource held by one agent at a time, until its TTL runs out (unless renewed),
// it is released, or its holder leaves the bus.

/** What a lease request got: the lease (`granted`), or who holds it and for how long. */
export interface LeaseState {
  granted: boolean;
  holder: string;
  /** Milliseconds left of the holder's lease. */
  remainingMs: number;
}

export class Leases {
  readonly #held = new Map<string, { holder: string; until: number }>();

  /** Grants (or, to its holder, renews) `resource` for `ttlMs`. */
  acquire(resource: string, holder: string, ttlMs: number): LeaseState {
    const now = performance.now();
    const held = this.#held.get(resource);
    if (held && held.until > now && held.holder !== holder) {
      return { granted: false, holder: held.holder, remainingMs: Math.ceil(held.until - now) };
    }
    this.#held.set(resource, { holder, until: now + ttlMs });
    return { granted: true, holder, remainingMs: ttlMs };
  }

  /** Releases `resource` if `holder` holds it; says whether it did. */
  release(resource: string, holder: string): boolean {
    const held = this.#held.get(resource);
    if (!held || held.holder !== holder || held.until <= performance.now()) return false;
    this.#held.delete(resource);
    return true;
  }

  releaseAll(holder: string): void {
    for (const [resource, held] of this.#held) if (held.holder === holder) this.#held.delete(resource);
  }

  clear(): void {
    this.#held.clear();
  }
}
