/**
 * Progress for long work: a status line redrawn in place on a TTY, otherwise a pino log
 * line every `intervalMs` with the same figures.
 */
import type { Logger } from './logger.js';

export interface ProgressSnapshot {
  phase: string;
  /** Figures for the log line; also rendered on the TTY line. */
  fields: Record<string, number | string | null>;
  /** The TTY line (without the phase). */
  line: string;
}

export class ProgressReporter {
  private timer: NodeJS.Timeout | null = null;
  private lastLen = 0;
  private readonly tty: boolean;

  constructor(
    private readonly snapshot: () => ProgressSnapshot,
    private readonly logger: Logger,
    private readonly intervalMs: number,
    tty?: boolean,
  ) {
    this.tty = tty ?? process.stderr.isTTY === true;
  }

  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => this.tick(), this.tty ? Math.min(this.intervalMs, 250) : this.intervalMs);
    this.timer.unref();
  }

  tick(): void {
    const s = this.snapshot();
    if (this.tty) {
      const text = `[${s.phase}] ${s.line}`;
      const pad = this.lastLen > text.length ? ' '.repeat(this.lastLen - text.length) : '';
      this.lastLen = text.length;
      process.stderr.write(`\r${text}${pad}`);
    } else {
      this.logger.info({ phase: s.phase, ...s.fields }, 'progress');
    }
  }

  /** Stop and clear the TTY line (so the next log line starts clean). */
  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    if (this.tty && this.lastLen > 0) process.stderr.write(`\r${' '.repeat(this.lastLen)}\r`);
    this.lastLen = 0;
  }
}

/** Counts events over a sliding window to report a rate per second. */
export class RateMeter {
  private samples: { t: number; v: number }[] = [];
  constructor(private readonly windowMs = 5000) {}
  /** Record the running total `v` at time `t` (one sample per 100 ms is kept: marks can come per batch). */
  mark(v: number, t = Date.now()): void {
    const n = this.samples.length;
    if (n >= 2 && t - this.samples[n - 2]!.t < 100) {
      // Move the newest sample forward instead of adding one.
      const last = this.samples[n - 1]!;
      last.t = t;
      last.v = v;
      return;
    }
    this.samples.push({ t, v });
    while (this.samples.length > 2 && this.samples[0]!.t < t - this.windowMs) this.samples.shift();
  }
  rate(): number {
    if (this.samples.length < 2) return 0;
    const a = this.samples[0]!;
    const b = this.samples[this.samples.length - 1]!;
    return b.t > a.t ? ((b.v - a.v) * 1000) / (b.t - a.t) : 0;
  }
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

export function formatCount(n: number): string {
  if (n < 1e4) return String(Math.round(n));
  if (n < 1e6) return `${(n / 1e3).toFixed(1)}k`;
  return `${(n / 1e6).toFixed(2)}M`;
}

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
