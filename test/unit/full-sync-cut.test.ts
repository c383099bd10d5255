import { describe, expect, it } from 'vitest';
import { replicaLimit } from '../../src/sync/steps/rdb-cut.js';
import { Backoff } from '../../src/sync/steps/reconnect.js';
import { resolveSyncOptions, SYNC_DEFAULTS } from '../../src/sync/options.js';

describe('a full sync the source keeps cutting', () => {
  it("reads the replica class of client-output-buffer-limit (CONFIG GET's spelling is 'slave')", () => {
    expect(replicaLimit('normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60')).toEqual({ hard: 268435456, soft: 67108864, seconds: 60 });
    expect(replicaLimit('normal 0 0 0 replica 0 0 0')).toEqual({ hard: 0, soft: 0, seconds: 0 });
    expect(replicaLimit('normal 0 0 0')).toBeNull();
  });

  it('counts full syncs in a row until one streams; only a source failure gives up, at the limit', () => {
    const b = new Backoff(10, 100, 1000, 3);
    for (let i = 0; i < 2; i++) b.fullSyncServed();
    expect(b.fullSyncsExhausted('source')).toBe(false);
    b.fullSyncServed();
    expect(b.fullSyncsExhausted('source')).toBe(true);
    expect(b.fullSyncsExhausted('target')).toBe(false);
    b.streaming();
    expect(b.fullSyncsExhausted('source')).toBe(false);
    expect(b.fullSyncsInARow).toBe(0);
  });

  it('--max-full-sync-attempts defaults to 3 and must be a whole number above zero', () => {
    expect(SYNC_DEFAULTS.maxFullSyncAttempts).toBe(3);
    expect(resolveSyncOptions({ source: 'redis://a:1', target: 'redis://b:2' }).maxFullSyncAttempts).toBe(3);
    expect(() => resolveSyncOptions({ source: 'redis://a:1', target: 'redis://b:2', maxFullSyncAttempts: 0 })).toThrow(/maxFullSyncAttempts/);
    expect(() => resolveSyncOptions({ source: 'redis://a:1', target: 'redis://b:2', maxFullSyncAttempts: 1.5 })).toThrow(/maxFullSyncAttempts/);
  });
});
