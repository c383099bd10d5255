import { describe, expect, it } from 'vitest';
import { checkBacklog, checkOutputBuffer, configSize, parseReplicaLimit, MB } from '../../src/plan/buffers.js';

describe('plan buffer checks', () => {
  it('reads the replica class of client-output-buffer-limit (CONFIG GET spells it slave)', () => {
    expect(parseReplicaLimit('normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60')).toEqual({ hard: 268435456, soft: 67108864, softSeconds: 60 });
    expect(parseReplicaLimit('normal 0 0 0 pubsub 1 1 1')).toBeNull();
  });

  it('the soft limit only fails when exceeded for longer than its seconds', () => {
    const limit = { hard: 256 * MB, soft: 64 * MB, softSeconds: 60 };
    // 100 MB queued: above soft, but a 10 s full sync ends before 60 s above it.
    expect(checkOutputBuffer(limit, 10 * MB, 10).verdict).toBe('ok');
    const long = checkOutputBuffer(limit, 1 * MB, 100);
    expect(long.verdict).toBe('fail');
    expect(long.fix).toEqual(['CONFIG SET client-output-buffer-limit "replica 256mb 150mb 60"']);
    expect(checkOutputBuffer({ hard: 0, soft: 0, softSeconds: 0 }, 100 * MB, 100).verdict).toBe('ok');
    expect(checkOutputBuffer(null, MB, 1).verdict).toBe('warn');
  });

  it('asks for a backlog holding the outage with headroom, and a ttl outlasting it', () => {
    const c = checkBacklog(1 * MB, 3600, 100 * 1024, 300);
    expect(c.verdict).toBe('fail');
    expect(c.fix).toEqual(['CONFIG SET repl-backlog-size 44mb']);
    expect(checkBacklog(64 * MB, 3600, 100 * 1024, 300).verdict).toBe('ok');
    expect(checkBacklog(64 * MB, 60, 100 * 1024, 300).fix).toEqual(['CONFIG SET repl-backlog-ttl 450']);
    expect(checkBacklog(64 * MB, 0, 100 * 1024, 300).verdict).toBe('ok');
  });

  it('writes sizes as CONFIG SET accepts them, rounded up', () => {
    expect(configSize(500)).toBe('500');
    expect(configSize(1500)).toBe('2kb');
    expect(configSize(MB + 1)).toBe('2mb');
  });
});
