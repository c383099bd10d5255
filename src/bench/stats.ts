/** Figures of a benchmark: percentiles, and the CPU time and peak memory of a live process (Linux /proc). */
import { readFileSync } from 'node:fs';

/** p-th percentile (0..100) of a numeric array, nearest-rank; null when empty. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const s = Float64Array.from(values).sort();
  const rank = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[rank]!;
}

// USER_HZ is 100 on every Linux build Node supports.
const CLOCK_TICKS = 100;

/** CPU time (user + sys) a live process has used so far, in ms; null when /proc cannot tell. */
export function procCpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the ")" that closes the command name; utime and stime are fields 14 and 15.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

/** Peak resident memory (VmHWM) of a live process, in KB; null when /proc cannot tell. */
export function procPeakRssKb(pid: number): number | null {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}
