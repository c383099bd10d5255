/**
 * `replicant plan`: what a sync from this source to this target will need, measured before
 * it starts. Reads both servers' INFO and CONFIG, samples the source's write rate, estimates
 * the RDB from a sample of DUMP sizes, and checks buffers, compatibility, memory and ACLs.
 * Nothing is written to the source; on the target only the preflight's `__replicant:preflight`
 * probe key (deleted at once) when ACL DRYRUN is not available.
 */
import { SourceError } from '../errors.js';
import { silentLogger, type Logger } from '../observe/logger.js';
import { readServerInfo, parseServerInfo, type ServerInfo } from '../replication/server-info.js';
import { describeSource, parseSourceUrl, resolveSource } from '../replication/source.js';
import { parseRedisUrl } from '../replication/url.js';
import type { TlsSettings } from '../net/tls.js';
import { PreflightCheck, type PreflightWriteMode } from '../writer/preflight.js';
import { moduleNames, probeTarget, rdbVersionFor } from '../writer/probe.js';
import type { TargetInfo } from '../writer/types.js';
import { readKeyspace } from '../verify/capabilities.js';
import { ServerReply, VerifySide } from '../verify/side.js';
import { checkBacklog, checkOutputBuffer, configSize, parseReplicaLimit, type Verdict } from './buffers.js';
import { estimateRdbBytes, type RdbEstimate } from './rdb-estimate.js';
import { checkSourceAcl } from './source-acl.js';

export interface PlanOptions {
  source: string;
  target: string;
  /** The outage the sync must survive with a partial resync. */
  outageMs: number;
  /** How long the write rate is sampled. */
  sampleMs: number;
  /** Replicant's full-sync rates used for the time estimate (from `replicant bench`). */
  keysPerSec: number;
  bytesPerSec: number;
  writeMode: PreflightWriteMode;
  /** Keys sampled per db for the RDB estimate. */
  sampleKeys: number;
  /** TLS settings of a rediss:// / sentinels:// side (from --tls-* options). */
  tls?: { source?: TlsSettings; target?: TlsSettings };
  logger?: Logger;
}

export interface PlanCheck {
  name: string;
  verdict: Verdict;
  detail: string;
  fix: string[];
}

export interface PlanReport {
  /** `masters`: a Redis Cluster's number of masters (its keys are added up over them), null when standalone. */
  source: { address: string; version: string; rdbVersion: number; masters: number | null; keys: number; usedMemory: number; modules: string[]; functionLibraries: number };
  target: { address: string; version: string; rdbVersion: number; cluster: boolean; masters: number | null; keys: number; usedMemory: number; maxmemory: number; modules: string[] };
  writeRate: { bytesPerSec: number; commandsPerSec: number; method: 'replication-offset' | 'network-input'; sampledMs: number };
  rdb: RdbEstimate;
  fullSync: { estimatedSec: number; keysPerSec: number; bytesPerSec: number };
  outageSec: number;
  /** What `--write-mode auto` will do with this pair. */
  autoWriteMode: 'restore-for-non-strings' | 'commands';
  checks: PlanCheck[];
  /** False when a check failed: the sync as planned will not work. */
  ok: boolean;
}

/** Fork, handshake and the first batches: a full sync never takes less, whatever the size. */
const MIN_FULL_SYNC_SEC = 1;

function configValue(reply: unknown): string | null {
  if (reply instanceof ServerReply || !Array.isArray(reply) || reply.length < 2) return null;
  return String(reply[1]);
}

function fieldNum(info: ServerInfo, name: string): number {
  const v = Number(info.fields.get(name));
  return Number.isFinite(v) ? v : 0;
}

export async function runPlan(o: PlanOptions): Promise<PlanReport> {
  const log = o.logger ?? silentLogger();
  const spec = parseSourceUrl(o.source, o.tls?.source);
  const endpoint = await resolveSource(spec, log);
  const first = await readServerInfo(endpoint).catch((e: unknown) => {
    throw new SourceError(`source ${describeSource(spec)}: ${(e as Error).message}`, { cause: e });
  });
  if (first === null) throw new SourceError(`source ${describeSource(spec)} refuses INFO: plan needs its figures (grant +info to its user)`);
  const t0 = Date.now();
  const source = new VerifySide('source', endpoint, log);
  const targetEndpoint = parseRedisUrl(o.target, o.tls?.target);
  const target = new VerifySide('target', targetEndpoint, log);
  try {
    await source.open();
    await target.open();
    // A cluster's keys are on all its masters; the other figures are the seed node's.
    const sourceKeyspace = source.clusterMasters === null ? first.keys : await readKeyspace(source);
    const [cobl, backlog, ttl, modulesText] = await Promise.all([
      source.tryCall(0, ['CONFIG', 'GET', 'client-output-buffer-limit']),
      source.tryCall(0, ['CONFIG', 'GET', 'repl-backlog-size']),
      source.tryCall(0, ['CONFIG', 'GET', 'repl-backlog-ttl']),
      source.tryCall(0, ['INFO', 'modules']),
    ]);
    const sourceModules = modulesText instanceof ServerReply ? [] : moduleNames(String(modulesText));
    // The RDB sample runs while the write rate is being sampled.
    const rdbP = estimateRdbBytes(source, { ...first, keys: sourceKeyspace }, o.sampleKeys);
    const tinfo = await probeTarget((args) => target.call(0, args), target.label, log);
    const tmem = parseServerInfo(String(await target.call(0, ['INFO', 'memory'])));
    const sourceAcl = await checkSourceAcl(source, endpoint.username);
    const preflight = await new PreflightCheck(target, { target: targetEndpoint, cluster: tinfo.cluster, writeMode: o.writeMode, checkpointInTarget: !tinfo.cluster, source: first, logger: log }).collect();
    const rdb = await rdbP;
    const wait = o.sampleMs - (Date.now() - t0);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const second = await readServerInfo(endpoint);
    if (second === null) throw new SourceError(`source ${describeSource(spec)} stopped answering INFO`);
    const rate = writeRate(first, second, Date.now() - t0);

    const sourceRdb = rdbVersionFor(first.major, first.minor, first.fields.has('valkey_version'));
    const keys = [...sourceKeyspace.values()].reduce((a, b) => a + b, 0);
    const fullSyncSec = Math.max(MIN_FULL_SYNC_SEC, keys / o.keysPerSec, rdb.bytes / o.bytesPerSec);
    const outageSec = o.outageMs / 1000;
    const checks: PlanCheck[] = [];
    checks.push({ name: 'output buffer', ...checkOutputBuffer(configValue(cobl) === null ? null : parseReplicaLimit(configValue(cobl)!), rate.bytesPerSec, fullSyncSec) });
    const backlogSize = configValue(backlog);
    const backlogTtl = configValue(ttl);
    checks.push({ name: 'backlog', ...checkBacklog(backlogSize === null ? null : Number(backlogSize), backlogTtl === null ? null : Number(backlogTtl), rate.bytesPerSec, outageSec) });
    checks.push(compatibility(first, sourceRdb, sourceModules, tinfo, o.writeMode));
    checks.push(memoryHeadroom(first, rdb, tmem, tinfo.cluster));
    checks.push(sourceAcl);
    const masters = source.clusterMasters;
    if (masters !== null) {
      checks.push({
        name: 'cluster source',
        verdict: 'warn',
        detail:
          `the source is a cluster of ${masters.length} masters (${masters.join(', ')}): its keys and the RDB estimate cover them all; ` +
          `the write rate, buffers, backlog, memory and permissions above are those of ${source.label} only: plan each master (-s redis://MASTER), each shard syncs on a link of its own`,
        fix: [],
      });
    }
    // The memory figures are checked above with their own verdict.
    const targetWarnings = preflight.warnings.filter((w) => !w.startsWith('maxmemory '));
    checks.push({
      name: 'target permissions',
      verdict: preflight.problems.length > 0 ? 'fail' : targetWarnings.length > 0 ? 'warn' : 'ok',
      detail: preflight.problems.length + targetWarnings.length === 0 ? `user ${preflight.user} may run every command the sync sends (--write-mode ${o.writeMode})` : [...preflight.problems, ...targetWarnings].join('; '),
      fix: [],
    });
    return {
      source: { address: source.label, version: first.version, rdbVersion: sourceRdb, masters: masters?.length ?? null, keys, usedMemory: first.usedMemory, modules: sourceModules, functionLibraries: first.functionLibraries },
      target: { address: target.label, version: tinfo.version, rdbVersion: tinfo.rdbVersion, cluster: tinfo.cluster, masters: target.clusterMasters?.length ?? null, keys: target.clusterMasters === null ? tinfo.dbsize : sumKeys(await readKeyspace(target)), usedMemory: tmem.usedMemory, maxmemory: tmem.maxmemory, modules: tinfo.modules },
      writeRate: rate,
      rdb,
      fullSync: { estimatedSec: fullSyncSec, keysPerSec: o.keysPerSec, bytesPerSec: o.bytesPerSec },
      outageSec,
      autoWriteMode: tinfo.rdbVersion >= sourceRdb ? 'restore-for-non-strings' : 'commands',
      checks,
      ok: checks.every((c) => c.verdict !== 'fail'),
    };
  } finally {
    source.close();
    target.close();
  }
}

const sumKeys = (m: Map<number, number>) => [...m.values()].reduce((a, b) => a + b, 0);

/**
 * Bytes of replication stream per second: the master_repl_offset delta when the source keeps a
 * backlog (it only counts then); else its network input, an upper bound (reads count too).
 */
function writeRate(a: ServerInfo, b: ServerInfo, ms: number): PlanReport['writeRate'] {
  const sec = Math.max(0.001, ms / 1000);
  const backlog = a.fields.get('repl_backlog_active') === '1' && b.fields.get('repl_backlog_active') === '1' && a.masterReplid === b.masterReplid;
  const bytes = backlog ? b.masterReplOffset - a.masterReplOffset : fieldNum(b, 'total_net_input_bytes') - fieldNum(a, 'total_net_input_bytes');
  return {
    bytesPerSec: Math.max(0, bytes) / sec,
    commandsPerSec: Math.max(0, fieldNum(b, 'total_commands_processed') - fieldNum(a, 'total_commands_processed')) / sec,
    method: backlog ? 'replication-offset' : 'network-input',
    sampledMs: ms,
  };
}

export function compatibility(src: ServerInfo, sourceRdb: number, sourceModules: string[], t: TargetInfo, mode: PreflightWriteMode): PlanCheck {
  const notes: string[] = [`source ${src.version} (RDB ${sourceRdb}) → target ${t.version} (RDB ${t.rdbVersion})`];
  let verdict: Verdict = 'ok';
  const restoreOk = t.rdbVersion >= sourceRdb;
  if (mode === 'commands') notes.push('--write-mode commands writes every key with plain commands');
  else if (restoreOk) notes.push(`--write-mode ${mode} writes strings with SET and other types with RESTORE`);
  else {
    notes.push(`the target cannot RESTORE RDB ${sourceRdb} payloads: ${mode === 'restore' ? '--write-mode restore falls back to' : 'auto picks'} plain commands (slower)`);
    if (mode === 'restore') verdict = 'warn';
  }
  const missing = sourceModules.filter((m) => !t.modules.includes(m));
  if (missing.length > 0) {
    verdict = 'fail';
    notes.push(`modules ${missing.join(', ')} are loaded on the source but not on the target: their keys cannot be written (load them on the target)`);
  }
  if (src.functionLibraries > 0) {
    if (t.major < 7) {
      verdict = 'fail';
      notes.push(`${src.functionLibraries} function libraries on the source need a Redis 7+ target`);
    } else notes.push(`${src.functionLibraries} function libraries are copied with FUNCTION LOAD`);
  }
  if (src.major < 6 || (src.major === 6 && src.minor < 2)) {
    if (verdict === 'ok') verdict = 'warn';
    notes.push(`replicant cutover needs CLIENT PAUSE ... WRITE (Redis 6.2+) on the source`);
  }
  if (t.major < src.major && verdict === 'ok') {
    verdict = 'warn';
    notes.push('the target is older than the source: commands the source streams may be unknown to it');
  }
  return { name: 'compatibility', verdict, detail: notes.join('; '), fix: [] };
}

export function memoryHeadroom(src: ServerInfo, rdb: RdbEstimate, t: ServerInfo, cluster: boolean): PlanCheck {
  // The source's dataset takes about what it takes there (same encodings on the same version).
  const need = fieldNum(src, 'used_memory_dataset') || src.usedMemory;
  if (t.maxmemory <= 0) return { name: 'target memory', verdict: 'ok', detail: `no maxmemory on the target; the copy needs about ${configSize(need)} (RDB about ${configSize(rdb.bytes)})`, fix: [] };
  const room = Math.max(0, t.maxmemory - t.usedMemory);
  const base = `maxmemory ${configSize(t.maxmemory)}, ${configSize(t.usedMemory)} used, ${configSize(room)} free${cluster ? ' (seed node only)' : ''}; the copy needs about ${configSize(need)}`;
  const fix = [`CONFIG SET maxmemory ${configSize(t.usedMemory + need * 1.5)}   # on the target`];
  if (need > room) {
    const evicts = t.maxmemoryPolicy !== 'noeviction';
    return { name: 'target memory', verdict: 'fail', detail: `${base}: ${evicts ? `keys will be evicted (${t.maxmemoryPolicy})` : 'writes will be refused (OOM)'}`, fix };
  }
  if (need > room * 0.8) return { name: 'target memory', verdict: 'warn', detail: `${base}: less than 20 % to spare`, fix };
  return { name: 'target memory', verdict: 'ok', detail: base, fix: [] };
}
