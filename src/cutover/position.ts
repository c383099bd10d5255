/**
 * Where a running sync is: read from its `--metrics-port` /status endpoint, or from the
 * checkpoint it keeps on the target (`__replicant:checkpoint:<name>`). Both say which source
 * history (replid) and which byte of it the target has applied.
 */
import { parseCheckpoint } from '../checkpoint/checkpoint.js';
import { REGISTRY_KEY, parseRegistry } from '../checkpoint/identity.js';
import { TargetError, UsageError } from '../errors.js';
import { fetchSyncStatus } from '../observe/status-client.js';
import { ServerReply, type VerifySide } from '../verify/side.js';

export interface ShardPosition {
  phase: string;
  replid: string | null;
  appliedOffset: number | null;
  /** The node the shard is read from (host:port), when known. */
  node: string | null;
}

export interface SyncPosition {
  /** `streaming` when the sync relays the live stream; anything else cannot catch up by itself soon. */
  phase: string;
  replid: string | null;
  appliedOffset: number | null;
  /** Where the figures came from, for messages. */
  from: string;
  /** A cluster source's sync: each shard's own position (its /status `shards`). */
  shards?: ShardPosition[];
}

export type PositionReader = () => Promise<SyncPosition>;

const STATUS_TIMEOUT_MS = 2_000;

/** `http://host:port/status` of `replicant sync --metrics-port`; a bare `http://host:port` gets /status added. */
export function parseStatusUrl(text: string): URL {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new UsageError(`--status-url ${JSON.stringify(text)}: expected http://HOST:PORT/status (the --metrics-port of the running sync)`);
  }
  if (u.protocol !== 'http:') throw new UsageError(`--status-url ${text}: only http:// is served by --metrics-port`);
  if (u.pathname === '/' || u.pathname === '') u.pathname = '/status';
  return u;
}

export function statusUrlReader(url: URL): PositionReader {
  return async () => {
    const s = await fetchSyncStatus(url, STATUS_TIMEOUT_MS);
    if (typeof s.phase !== 'string') throw new Error(`status of the sync at ${url.href}: not a replicant /status reply (no phase)`);
    const pos: SyncPosition = {
      phase: s.phase,
      replid: typeof s.replid === 'string' ? s.replid : null,
      appliedOffset: typeof s.appliedOffset === 'number' ? s.appliedOffset : null,
      from: url.href,
    };
    const shards = (s as { shards?: unknown }).shards;
    if (Array.isArray(shards)) {
      pos.shards = shards.map((x: Record<string, unknown>) => ({
        phase: typeof x['phase'] === 'string' ? x['phase'] : 'unknown',
        replid: typeof x['replid'] === 'string' ? x['replid'] : null,
        appliedOffset: typeof x['appliedOffset'] === 'number' ? x['appliedOffset'] : null,
        node: typeof x['node'] === 'string' ? x['node'] : null,
      }));
    }
    return pos;
  };
}

/** The checkpoint key in db 0 of the target (written with every applied batch, PING-only ones included). */
export function checkpointReader(target: VerifySide, key: string): PositionReader {
  return async () => {
    const raw = await target.call(0, ['GET', key]).catch((e: unknown) => {
      throw e instanceof ServerReply ? new TargetError(`target ${target.label}: GET ${key} refused (${e.message}); give --status-url instead`) : e;
    });
    const cp = parseCheckpoint(Buffer.isBuffer(raw) ? raw : null);
    const from = `target key ${key}`;
    if (cp === null) return { phase: 'none', replid: null, appliedOffset: null, from };
    return { phase: cp.state === 'streaming' ? 'streaming' : 'full-sync', replid: cp.replid, appliedOffset: cp.offset, from };
  };
}

/**
 * A cluster source's sync, from the target alone: each shard's checkpoint (`<name>@<shard>` in
 * the registry), wherever the process that holds the shard runs (shards shared among processes).
 */
export function clusterCheckpointReader(target: VerifySide, name: string): PositionReader {
  return async () => {
    const from = `the shard checkpoints of sync "${name}" on the target`;
    const registry = parseRegistry(await target.call(0, ['HGETALL', REGISTRY_KEY]));
    const shards: ShardPosition[] = [];
    for (const [id, r] of registry) {
      if (!id.startsWith(`${name}@`)) continue;
      const cp = parseCheckpoint(await readKey(target, r.checkpointKey));
      shards.push(cp === null ? { phase: 'none', replid: null, appliedOffset: null, node: null } : { phase: cp.state === 'streaming' ? 'streaming' : 'full-sync', replid: cp.replid, appliedOffset: cp.offset, node: null });
    }
    if (shards.length === 0) throw new UsageError(`no shard of a sync named "${name}" in the registry ${REGISTRY_KEY} of the target: give the sync's --name (or its seed address host:port when it has none), or --status-url`);
    return { phase: shards.every((x) => x.phase === 'streaming') ? 'streaming' : 'full-sync', replid: null, appliedOffset: null, from, shards };
  };
}

async function readKey(target: VerifySide, key: string): Promise<Buffer | null> {
  const raw = await target.call(0, ['GET', key]).catch((e: unknown) => {
    throw e instanceof ServerReply ? new TargetError(`target ${target.label}: GET ${key} refused (${e.message}); give --status-url instead`) : e;
  });
  return Buffer.isBuffer(raw) ? raw : null;
}
