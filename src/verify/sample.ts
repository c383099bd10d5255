/** `--sample`: check a random part of the keys, as a count ("10000") or a fraction ("0.1", "5%"). */
import { UsageError } from '../errors.js';

export type SampleSpec = { kind: 'count'; n: number } | { kind: 'fraction'; f: number };

export function parseSample(text: string): SampleSpec {
  const t = text.trim();
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(t);
  if (pct) {
    const f = Number(pct[1]) / 100;
    if (f > 0 && f <= 1) return { kind: 'fraction', f };
  } else if (/^\d+$/.test(t)) {
    const n = Number(t);
    if (Number.isSafeInteger(n) && n > 0) return { kind: 'count', n };
  } else if (/^\d*\.\d+$/.test(t)) {
    const f = Number(t);
    if (f > 0 && f <= 1) return { kind: 'fraction', f };
  }
  throw new UsageError(`--sample: expected a number of keys (10000), a fraction (0.1) or a percentage (5%), got "${text}"`);
}

export function describeSample(s: SampleSpec): string {
  return s.kind === 'count' ? `about ${s.n} keys` : `${+(s.f * 100).toFixed(4)}%`;
}

/**
 * Decides key by key as SCAN lists them. A count becomes a probability over `total` keys
 * (the INFO keyspace figure; SCAN order is hash order, so this spreads over the keyspace),
 * capped at the count.
 */
export class Sampler {
  private readonly p: number;
  private readonly cap: number;
  private taken = 0;

  constructor(spec: SampleSpec | null, total: number, private readonly random: () => number = Math.random) {
    if (spec === null) {
      this.p = 1;
      this.cap = Infinity;
    } else if (spec.kind === 'fraction') {
      this.p = spec.f;
      this.cap = Infinity;
    } else {
      this.p = total > 0 ? Math.min(1, spec.n / total) : 1;
      this.cap = spec.n;
    }
  }

  take(): boolean {
    if (this.taken >= this.cap) return false;
    if (this.p < 1 && this.random() >= this.p) return false;
    this.taken++;
    return true;
  }

  get done(): boolean {
    return this.taken >= this.cap;
  }
}
