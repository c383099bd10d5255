import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GlobMatcher } from '../../src/export/glob.js';
import { KeyFilter } from '../../src/export/key-filter.js';
import type { RdbRecord } from '../../src/rdb/types.js';

const m = (pattern: string, subject: string | Buffer) => new GlobMatcher(pattern).matches(typeof subject === 'string' ? Buffer.from(subject) : subject);

/**
 * A direct transcription of Redis's recursive stringmatchlen (util.c, case-sensitive) used
 * as the reference; it walks byte arrays with explicit lengths like the C code.
 */
function redisMatch(p: Uint8Array, s: Uint8Array): boolean {
  const skip = { v: false };
  const impl = (pi: number, pl: number, si: number, sl: number): boolean => {
    while (pl > 0 && sl > 0) {
      const c = p[pi]!;
      if (c === 0x2a) {
        while (pl > 1 && p[pi + 1] === 0x2a) { pi++; pl--; }
        if (pl === 1) return true;
        while (sl > 0) {
          if (impl(pi + 1, pl - 1, si, sl)) return true;
          if (skip.v) return false;
          si++; sl--;
        }
        skip.v = true;
        return false;
      } else if (c === 0x3f) {
        si++; sl--;
      } else if (c === 0x5b) {
        pi++; pl--;
        const not = pl > 0 && p[pi] === 0x5e;
        if (not) { pi++; pl--; }
        let match = false;
        for (;;) {
          if (pl >= 2 && p[pi] === 0x5c) {
            pi++; pl--;
            if (p[pi] === s[si]) match = true;
          } else if (pl > 0 && p[pi] === 0x5d) {
            break;
          } else if (pl === 0) {
            pi--; pl++;
            break;
          } else if (pl >= 3 && p[pi + 1] === 0x2d) {
            let a = p[pi]!; let b = p[pi + 2]!;
            if (a > b) [a, b] = [b, a];
            pi += 2; pl -= 2;
            if (s[si]! >= a && s[si]! <= b) match = true;
          } else if (p[pi] === s[si]) {
            match = true;
          }
          pi++; pl--;
        }
        if (not) match = !match;
        if (!match) return false;
        si++; sl--;
      } else {
        if (c === 0x5c && pl >= 2) { pi++; pl--; }
        if (p[pi] !== s[si]) return false;
        si++; sl--;
      }
      pi++; pl--;
      if (sl === 0) {
        while (pl > 0 && p[pi] === 0x2a) { pi++; pl--; }
        break;
      }
    }
    return pl === 0 && sl === 0;
  };
  return impl(0, p.length, 0, s.length);
}

describe('GlobMatcher (Redis glob semantics on bytes)', () => {
  it('stars, question marks and literals', () => {
    expect(m('*', 'anything')).toBe(true);
    expect(m('*', '')).toBe(true);
    expect(m('user:*', 'user:1')).toBe(true);
    expect(m('user:*', 'user')).toBe(false);
    expect(m('h?llo', 'hello')).toBe(true);
    expect(m('h?llo', 'hllo')).toBe(false);
    expect(m('*:*:x', 'a:b:c:x')).toBe(true);
    expect(m('a*b*c', 'aXbYbZc')).toBe(true);
    expect(m('a*b*c', 'aXbYbZ')).toBe(false);
  });
  it('classes, negation, ranges and escapes', () => {
    expect(m('h[ae]llo', 'hallo')).toBe(true);
    expect(m('h[ae]llo', 'hillo')).toBe(false);
    expect(m('h[^e]llo', 'hallo')).toBe(true);
    expect(m('h[^e]llo', 'hello')).toBe(false);
    expect(m('h[a-b]llo', 'hbllo')).toBe(true);
    expect(m('h[b-a]llo', 'hallo')).toBe(true); // reversed range
    expect(m('a\\*b', 'a*b')).toBe(true);
    expect(m('a\\*b', 'axb')).toBe(false);
    expect(m('[\\]]', ']')).toBe(true);
    expect(m('x[]', 'x]')).toBe(false);
    expect(m('ab[c', 'abc')).toBe(true); // unterminated class runs to the end
  });
  it('works on binary keys', () => {
    expect(m('\x00*', Buffer.from([0, 0xff, 0x0a]))).toBe(true);
    expect(new GlobMatcher(Buffer.from([0x5b, 0x80, 0x2d, 0xff, 0x5d])).matches(Buffer.from([0x90]))).toBe(true);
  });
  it('agrees with a transcription of Redis stringmatchlen on random patterns', () => {
    const alphabet = fc.constantFrom(...'ab*?[]^-\\'.split(''));
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 8 }), fc.array(fc.constantFrom('a', 'b', '-', ']', '^', '*'), { minLength: 1, maxLength: 8 }), (pat, sub) => {
        const p = Buffer.from(pat.join(''));
        const s = Buffer.from(sub.join(''));
        expect(new GlobMatcher(p).matches(s)).toBe(redisMatch(p, s));
      }),
      { numRuns: 3000 },
    );
  });
});

describe('KeyFilter', () => {
  const ks = (key: string, db: number, type: 'string' | 'list'): RdbRecord => ({ kind: 'keyStart', db, key: Buffer.from(key), rdbType: 0, type, expireMs: null, lruIdle: null, lfuFreq: null, offset: 0 });
  const stream: RdbRecord[] = [
    { kind: 'aux', key: Buffer.from('x'), value: Buffer.from('y') },
    ks('a:1', 0, 'string'), { kind: 'string', value: Buffer.from('v') }, { kind: 'keyEnd', raw: null, valueBytes: 1 },
    ks('b:1', 0, 'list'), { kind: 'listItems', items: [] }, { kind: 'keyEnd', raw: null, valueBytes: 1 },
    ks('a:2', 1, 'list'), { kind: 'listItems', items: [] }, { kind: 'keySkipped', error: new Error('x') },
  ];
  it('drops every record of a key that does not match, keeps the rest', () => {
    const f = new KeyFilter({ keys: ['a:*'], dbs: [0] });
    const kept = stream.filter((r) => f.accept(r));
    expect(kept.map((r) => r.kind)).toEqual(['aux', 'keyStart', 'string', 'keyEnd']);
    expect(f.dropped).toBe(2);
    const byType = new KeyFilter({ types: ['list'] });
    expect(stream.filter((r) => byType.accept(r)).map((r) => r.kind)).toEqual(['aux', 'keyStart', 'listItems', 'keyEnd', 'keyStart', 'listItems', 'keySkipped']);
    expect(new KeyFilter({}).passAll).toBe(true);
  });
});
