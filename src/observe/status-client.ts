/** Reads the /status of a running `replicant sync --metrics-port` (SyncSession.status() as JSON; see metrics.ts). */
import type { SyncStatus } from '../sync/session.js';

/** The status, or an Error naming the URL (unreachable, HTTP error, not JSON, no timely answer). */
export async function fetchSyncStatus(url: URL | string, timeoutMs = 2_000): Promise<Partial<SyncStatus>> {
  const href = typeof url === 'string' ? url : url.href;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const body = (await res.json()) as unknown;
    if (typeof body !== 'object' || body === null) throw new Error('not a JSON object');
    return body as Partial<SyncStatus>;
  } catch (e) {
    throw new Error(`status of the sync at ${href}: ${(e as Error).message}`, { cause: e });
  }
}
