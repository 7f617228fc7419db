// Sharding by key: rendezvous hashing, so every key has one member, and a member joining
// or leaving moves only the keys it gains or had.

/** The member `key` belongs to (by `id`, so the choice does not depend on their order). */
export function pickByKey<T>(members: readonly T[], key: string, id: (m: T) => string): T {
  let best = members[0] as T;
  let bestScore = -1;
  for (const m of members) {
    const score = hash(`${key}\u0000${id(m)}`);
    if (score > bestScore) {
      best = m;
      bestScore = score;
    }
  }
  return best;
}

/** FNV-1a over UTF-16 code units, then a murmur3 finalizer for a well-mixed 32 bits. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
