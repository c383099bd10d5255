/**
 * Full-sync rates measured by `replicant bench --json` on the user's servers, for the time
 * estimate of `replicant plan --from-bench FILE`.
 */
import { readFileSync } from 'node:fs';
import { UsageError } from '../errors.js';

export interface FullSyncRates {
  keysPerSec: number;
  bytesPerSec: number;
}

export function readBenchRates(path: string): FullSyncRates {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UsageError(`--from-bench ${path}: ${(e as Error).message}`);
  }
  const full = (doc as { replicant?: { fullSync?: { keysPerSec?: unknown; mbPerSec?: unknown } } } | null)?.replicant?.fullSync;
  const keys = full?.keysPerSec;
  const mb = full?.mbPerSec;
  if (typeof keys !== 'number' || typeof mb !== 'number' || !(keys > 0) || !(mb > 0)) {
    throw new UsageError(`--from-bench ${path}: expected the output of replicant bench --json (replicant.fullSync.keysPerSec and mbPerSec above zero)`);
  }
  return { keysPerSec: keys, bytesPerSec: mb * 1024 * 1024 };
}
