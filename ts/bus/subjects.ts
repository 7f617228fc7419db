// Subjects as NATS has them: dot-separated tokens; in a subscription `*` stands for one
// token and `>` (last) for one or more. An index finds the subscriptions a subject matches.

import { invalidArgument } from '../errors.js';

const MAX_SUBJECT = 255;

/** Checks a subject (or, with `wildcards`, a subscription's pattern); returns it. */
export function checkSubject(what: string, subject: unknown, wildcards: boolean): string {
  if (typeof subject !== 'string' || subject.length === 0 || subject.length > MAX_SUBJECT) {
    throw invalidArgument(`${what} must be a string of 1 to ${MAX_SUBJECT} characters`);
  }
  const tokens = subject.split('.');
  for (const [i, token] of tokens.entries()) {
    if (token.length === 0 || /\s/.test(token)) {
      throw invalidArgument(`${what} ${JSON.stringify(subject)} has an empty token or whitespace`);
    }
    const wild = token === '*' || token === '>';
    if ((token.includes('*') || token.includes('>')) && !(wildcards && wild)) {
      throw invalidArgument(
        wildcards
          ? `${what} ${JSON.stringify(subject)}: '*' and '>' must be whole tokens`
          : `${what} ${JSON.stringify(subject)} may not contain wildcards`,
      );
    }
    if (token === '>' && i !== tokens.length - 1) {
      throw invalidArgument(`${what} ${JSON.stringify(subject)}: '>' must be the last token`);
    }
  }
  return subject;
}

interface Node<T> {
  children: Map<string, Node<T>>;
  /** Subscriptions whose pattern ends here. */
  here: Set<T>;
  /** Subscriptions whose pattern ends here with `>`. */
  rest: Set<T>;
}

const node = <T>(): Node<T> => ({ children: new Map(), here: new Set(), rest: new Set() });

/** Subscriptions by pattern, and the ones a subject matches (remembered until the next
 *  change, since publishers mostly repeat a few subjects). */
export class SubjectIndex<T> {
  readonly #root: Node<T> = node();
  readonly #cache = new Map<string, T[]>();

  add(pattern: string, item: T): void {
    this.#walk(pattern, true)?.add(item);
    this.#cache.clear();
  }

  /** Removes a subscription, and the index's nodes it alone kept (patterns come and go). */
  delete(pattern: string, item: T): void {
    this.#cache.clear();
    const tokens = pattern.split('.');
    const path: Node<T>[] = [this.#root];
    for (const [i, token] of tokens.entries()) {
      const at = path[path.length - 1] as Node<T>;
      if (token === '>' && i === tokens.length - 1) {
        at.rest.delete(item);
        break;
      }
      const next = at.children.get(token);
      if (!next) return;
      if (i === tokens.length - 1) next.here.delete(item);
      path.push(next);
    }
    // Emptied nodes go, deepest first; `path[k]` is the child of `path[k - 1]` by token k - 1.
    for (let k = path.length - 1; k > 0; k--) {
      const n = path[k] as Node<T>;
      if (n.children.size > 0 || n.here.size > 0 || n.rest.size > 0) break;
      (path[k - 1] as Node<T>).children.delete(tokens[k - 1] as string);
    }
  }

  /** Index nodes in use (for tests: deletes leave none behind). */
  get size(): number {
    const count = (n: Node<T>): number => 1 + [...n.children.values()].reduce((a, c) => a + count(c), 0);
    return count(this.#root);
  }

  match(subject: string): T[] {
    let found = this.#cache.get(subject);
    if (!found) {
      found = [];
      collect(this.#root, subject.split('.'), 0, found);
      if (this.#cache.size >= 10_000) this.#cache.clear();
      this.#cache.set(subject, found);
    }
    return found;
  }

  #walk(pattern: string, create: boolean): Set<T> | undefined {
    const tokens = pattern.split('.');
    let at = this.#root;
    for (const [i, token] of tokens.entries()) {
      if (token === '>' && i === tokens.length - 1) return at.rest;
      let next = at.children.get(token);
      if (!next) {
        if (!create) return undefined;
        next = node();
        at.children.set(token, next);
      }
      at = next;
    }
    return at.here;
  }
}

function collect<T>(at: Node<T>, tokens: string[], i: number, out: T[]): void {
  if (i === tokens.length) {
    for (const item of at.here) out.push(item);
    return;
  }
  for (const item of at.rest) out.push(item);
  const exact = at.children.get(tokens[i] as string);
  if (exact) collect(exact, tokens, i + 1, out);
  const any = at.children.get('*');
  if (any) collect(any, tokens, i + 1, out);
}
