/**
 * Redis glob patterns (KEYS / SCAN MATCH, `stringmatchlen` in util.c) matched on raw bytes:
 *
 *   `*` any run of bytes, `?` one byte, `[abc]` / `[a-z]` (reversed ranges allowed) / `[^...]`
 *   a byte class, `\x` the byte x (also inside a class). A class missing its `]` runs to the
 *   end of the pattern; `[]` matches nothing.
 *
 * The pattern is compiled once into tokens, each matching exactly one byte except `*`, so
 * the classic single-backtrack-point algorithm gives the same answers as Redis's recursion.
 * One deliberate difference: Redis's matcher never matches an empty subject (KEYS and SCAN
 * special-case the pattern `*` instead); here `*` matches the empty key too.
 */

const STAR = -1;
const ANY = -2;

/** A token: STAR, ANY, a byte value (0..255), or a 256-entry class table. */
type Token = number | Uint8Array;

const BACKSLASH = 0x5c;

export class GlobMatcher {
  readonly pattern: Buffer;
  private readonly tokens: Token[];

  constructor(pattern: Buffer | string) {
    this.pattern = typeof pattern === 'string' ? Buffer.from(pattern) : pattern;
    this.tokens = compile(this.pattern);
  }

  /** True when the whole of `subject` matches. */
  matches(subject: Buffer): boolean {
    const t = this.tokens;
    let ti = 0;
    let si = 0;
    let starTi = -1;
    let starSi = 0;
    while (si < subject.length) {
      if (ti < t.length) {
        const tok = t[ti]!;
        if (tok === STAR) {
          starTi = ti++;
          starSi = si;
          continue;
        }
        const c = subject[si]!;
        if (tok === ANY || (typeof tok === 'number' ? tok === c : tok[c] === 1)) {
          ti++;
          si++;
          continue;
        }
      }
      if (starTi < 0) return false;
      // Let the last star swallow one more byte and retry from there.
      ti = starTi + 1;
      si = ++starSi;
    }
    while (ti < t.length && t[ti] === STAR) ti++;
    return ti === t.length;
  }
}

function compile(p: Buffer): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < p.length) {
    const c = p[i]!;
    if (c === 0x2a /* * */) {
      if (tokens[tokens.length - 1] !== STAR) tokens.push(STAR);
      i++;
    } else if (c === 0x3f /* ? */) {
      tokens.push(ANY);
      i++;
    } else if (c === 0x5b /* [ */) {
      i = compileClass(p, i + 1, tokens);
    } else if (c === BACKSLASH && i + 1 < p.length) {
      tokens.push(p[i + 1]!);
      i += 2;
    } else {
      tokens.push(c);
      i++;
    }
  }
  return tokens;
}

/** Parse a class starting after `[`; pushes its table and returns the index after `]`. */
function compileClass(p: Buffer, start: number, tokens: Token[]): number {
  const set = new Uint8Array(256);
  let i = start;
  const negate = i < p.length && p[i] === 0x5e; /* ^ */
  if (negate) i++;
  for (;;) {
    if (i >= p.length) break; // unterminated: the class ends with the pattern
    const c = p[i]!;
    if (c === BACKSLASH && p.length - i >= 2) {
      set[p[i + 1]!] = 1;
      i += 2;
    } else if (c === 0x5d /* ] */) {
      i++;
      break;
    } else if (p.length - i >= 3 && p[i + 1] === 0x2d /* - */) {
      let lo = c;
      let hi = p[i + 2]!;
      if (lo > hi) [lo, hi] = [hi, lo];
      for (let b = lo; b <= hi; b++) set[b] = 1;
      i += 3;
    } else {
      set[c] = 1;
      i++;
    }
  }
  if (negate) for (let b = 0; b < 256; b++) set[b] = set[b] ? 0 : 1;
  tokens.push(set);
  return i;
}
