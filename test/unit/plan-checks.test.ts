import { describe, expect, it } from 'vitest';
import { compatibility, memoryHeadroom } from '../../src/plan/plan.js';
import { parseServerInfo } from '../../src/replication/server-info.js';
import type { TargetInfo } from '../../src/writer/types.js';

const info = (lines: string[]) => parseServerInfo(`${lines.join('\r\n')}\r\n`);
const target = (o: Partial<TargetInfo>): TargetInfo => ({ runId: 'r', replid: '', version: '7.0.15', major: 7, minor: 0, rdbVersion: 10, valkey: false, cluster: false, dbsize: 0, databases: 16, modules: [], ...o });

describe('plan compatibility and memory checks', () => {
  it('fails on a module the target lacks, and on functions for a pre-7 target', () => {
    const src = info(['redis_version:7.2.4', 'number_of_libraries:2']);
    const c = compatibility(src, 11, ['ReJSON', 'search'], target({ modules: ['search'] }), 'auto');
    expect(c.verdict).toBe('fail');
    expect(c.detail).toContain('modules ReJSON are loaded on the source but not on the target');
    expect(c.detail).toContain('the target cannot RESTORE RDB 11 payloads: auto picks plain commands');
    const old = compatibility(src, 11, [], target({ version: '6.2.14', major: 6, minor: 2, rdbVersion: 9 }), 'auto');
    expect(old.verdict).toBe('fail');
    expect(old.detail).toContain('2 function libraries on the source need a Redis 7+ target');
  });

  it('warns when the source is too old for cutover or --write-mode restore must fall back', () => {
    expect(compatibility(info(['redis_version:6.0.9']), 9, [], target({}), 'auto').detail).toContain('CLIENT PAUSE ... WRITE (Redis 6.2+)');
    const r = compatibility(info(['redis_version:7.2.4']), 11, [], target({}), 'restore');
    expect(r.verdict).toBe('warn');
    expect(r.detail).toContain('--write-mode restore falls back to plain commands');
    expect(compatibility(info(['redis_version:7.0.15']), 10, [], target({}), 'auto').verdict).toBe('ok');
  });

  it('target memory: OOM with noeviction, eviction otherwise, fine without maxmemory', () => {
    const src = info(['used_memory:900000000', 'used_memory_dataset:800000000']);
    const rdb = { bytes: 300_000_000, sampledKeys: 200, method: 'dump-sample' as const };
    const small = memoryHeadroom(src, rdb, info(['used_memory:1000000', 'maxmemory:524288000', 'maxmemory_policy:noeviction']), false);
    expect(small.verdict).toBe('fail');
    expect(small.detail).toContain('writes will be refused (OOM)');
    expect(small.fix[0]).toMatch(/^CONFIG SET maxmemory 1146mb/);
    expect(memoryHeadroom(src, rdb, info(['used_memory:1000000', 'maxmemory:524288000', 'maxmemory_policy:allkeys-lru']), false).detail).toContain('keys will be evicted (allkeys-lru)');
    expect(memoryHeadroom(src, rdb, info(['used_memory:1000000', 'maxmemory:0']), false).verdict).toBe('ok');
  });
});
