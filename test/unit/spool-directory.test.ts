/** Spool files hold source data: owner-only modes; directories of dead runs are removed at start. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { removeStaleSpools } from '../../src/spool/directory.js';
import { Spool } from '../../src/spool/spool.js';

let parent: string;
beforeEach(() => {
  parent = mkdtempSync(join(tmpdir(), 'replicant-spooldir-test-'));
});
afterEach(() => rmSync(parent, { recursive: true, force: true }));

/** A pid that was alive a moment ago and is not any more. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '0']);
  return r.pid!;
}

function fakeSpoolDir(name: string, lock: object | null, files: string[] = []): string {
  const d = join(parent, name);
  mkdirSync(d);
  if (lock) writeFileSync(join(d, 'lock'), JSON.stringify(lock));
  for (const f of files) writeFileSync(join(d, f), 'data');
  return d;
}

describe('spool directory', () => {
  it('creates its directory 0700 and its lock and segment files 0600', async () => {
    const spool = await Spool.open({ dir: parent, memoryBudget: 0, segmentSize: 100 });
    for (let i = 0; i < 5; i++) spool.append(Buffer.alloc(60, i));
    // Segments are written asynchronously and deleted once read: look before reading.
    for (let i = 0; i < 100 && !readdirSync(spool.path).some((f) => f.startsWith('segment-')); i++) await new Promise((r) => setTimeout(r, 10));
    const dirMode = statSync(spool.path).mode & 0o777;
    const files = readdirSync(spool.path);
    const modes = files.map((f) => statSync(join(spool.path, f)).mode & 0o777);
    spool.end();
    while ((await spool.read()) !== null);
    await spool.close();
    expect(dirMode).toBe(0o700);
    expect(files).toContain('lock');
    expect(files.some((f) => f.startsWith('segment-'))).toBe(true);
    expect(modes.every((m) => m === 0o600)).toBe(true);
  });

  it('removes the directories of dead runs on this host, logging each, and leaves the others', async () => {
    const dead = deadPid();
    const stale = fakeSpoolDir('replicant-99-abc123', { pid: dead, host: hostname() }, ['segment-000000.spool', 'segment-000001.spool']);
    const oldFormat = fakeSpoolDir('replicant-98-def456', { pid: dead }, ['segment-000000.spool']);
    const alive = fakeSpoolDir('replicant-97-ghi789', { pid: process.pid === 1 ? 1 : process.ppid, host: hostname() }, ['segment-000000.spool']);
    const otherHost = fakeSpoolDir('replicant-96-jkl012', { pid: dead, host: `not-${hostname()}` });
    const unknownFile = fakeSpoolDir('replicant-95-mno345', { pid: dead, host: hostname() }, ['notes.txt']);
    const noLock = fakeSpoolDir('replicant-94-pqr678', null, ['segment-000000.spool']);
    const notOurs = fakeSpoolDir('something-else', { pid: dead });
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(s) });
    const removed = await removeStaleSpools(parent, logger);
    expect(removed.sort()).toEqual([oldFormat, stale].sort());
    expect(existsSync(stale) || existsSync(oldFormat)).toBe(false);
    for (const kept of [alive, otherHost, unknownFile, noLock, notOurs]) expect(existsSync(kept)).toBe(true);
    expect(lines.filter((l) => l.includes('removed the spool directory of a dead run')).length).toBe(2);
    expect(lines.some((l) => l.includes(stale))).toBe(true);
  });

  it('a new spool sweeps its parent first', async () => {
    const stale = fakeSpoolDir('replicant-93-stu901', { pid: deadPid(), host: hostname() }, ['segment-000000.spool']);
    const spool = await Spool.open({ dir: parent });
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(spool.path)).toBe(true);
    await spool.close();
  });
});
