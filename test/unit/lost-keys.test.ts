/** LostKeys: every snapshot key not written is counted and written to the report, once. */
import { mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/observe/logger.js';
import { TargetCommandError } from '../../src/writer/errors.js';
import { LOGGED_LOST_KEYS, LostKeys, defaultReportPath, keysOfCommand } from '../../src/sync/lost-keys.js';
import { describeShortfall, isShort } from '../../src/sync/incomplete.js';

const B = (s: string) => Buffer.from(s);
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'replicant-lost-'));
  dirs.push(d);
  return d;
}
const rejected = (args: Buffer[], reply: string) => new TargetCommandError({ target: 't:1', command: args[0]!.toString().toUpperCase(), reply, index: 0, args });

describe('LostKeys', () => {
  it('keysOfCommand: every key of an MSET, the first key otherwise, none for keyless commands', () => {
    expect(keysOfCommand([B('MSET'), B('k1'), B('v1'), B('k2'), B('v2')]).map(String)).toEqual(['k1', 'k2']);
    expect(keysOfCommand([B('RESTORE'), B('h'), B('0'), B('payload')]).map(String)).toEqual(['h']);
    expect(keysOfCommand([B('FUNCTION'), B('LOAD'), B('code')])).toEqual([]);
  });

  it('names all keys of a rejected MSET with db and reason, counts a chunked key once, creates the file only when needed', () => {
    const dir = tempDir();
    const lost = new LostKeys(silentLogger(), undefined, dir);
    expect(lost.path).toBeNull();
    lost.rejected(rejected([B('MSET'), B('k1'), B('v'), B('k\n2'), B('v')], 'OOM command not allowed'), 3);
    lost.rejected(rejected([B('APPEND'), B('big'), B('x')], 'OOM command not allowed'), 0);
    lost.rejected(rejected([B('APPEND'), B('big'), B('y')], 'OOM command not allowed'), 0);
    lost.add(0, B('corrupt'), 'corrupt value skipped: bad ziplist');
    lost.flush();
    expect(lost.count).toBe(4);
    expect(lost.path!.startsWith(join(dir, 'replicant-lost-keys-'))).toBe(true);
    expect(readFileSync(lost.path!, 'utf8')).toBe(
      '3\tk1\tMSET rejected by the target: OOM command not allowed\n' +
        '3\tk\\x0a2\tMSET rejected by the target: OOM command not allowed\n' +
        '0\tbig\tAPPEND rejected by the target: OOM command not allowed\n' +
        '0\tcorrupt\tcorrupt value skipped: bad ziplist\n',
    );
    expect(lost.sample).toEqual(['3:k1', '3:k\\x0a2', '0:big', '0:corrupt']);
  });

  it('logs the first ones only, writes every one to --report, and starts over on reset()', () => {
    const file = join(tempDir(), 'report.txt');
    const lines: unknown[] = [];
    const log = { warn: (o: unknown) => lines.push(o) } as unknown as ReturnType<typeof silentLogger>;
    const lost = new LostKeys(log, file, undefined);
    for (let i = 0; i < 5000; i++) lost.add(0, B(`key${i}`), 'NOPERM');
    lost.flush();
    expect(lines).toHaveLength(LOGGED_LOST_KEYS);
    expect(readFileSync(file, 'utf8').split('\n').filter(Boolean)).toHaveLength(5000);
    lost.reset();
    lost.add(1, B('again'), 'NOPERM');
    lost.flush();
    expect(lost.count).toBe(1);
    expect(readFileSync(file, 'utf8')).toBe('1\tagain\tNOPERM\n');
  });

  it('refuses a --report path whose directory is not writable at once (usage error), and survives a report that cannot be written', () => {
    expect(() => new LostKeys(silentLogger(), '/nonexistent-dir/r.txt', undefined)).toThrow(/--report \/nonexistent-dir\/r.txt: its directory is not writable/);
    const errors: unknown[] = [];
    const log = { warn: () => {}, error: (o: unknown) => errors.push(o) } as unknown as ReturnType<typeof silentLogger>;
    const lost = new LostKeys(log, undefined, '/nonexistent-dir');
    lost.add(0, B('k'), 'NOPERM');
    lost.add(0, B('k2'), 'NOPERM');
    lost.flush();
    expect(lost.count).toBe(2);
    expect(lost.path).toBeNull();
    expect(errors).toHaveLength(1);
  });

  it('refuses an existing --report path at start (a symlink or a file: exit 2, naming it), leaving it untouched', () => {
    const dir = tempDir();
    const victim = join(dir, 'victim.txt');
    writeFileSync(victim, 'precious\n', { mode: 0o644 });
    const link = join(dir, 'link.txt');
    symlinkSync(victim, link);
    const dangling = join(dir, 'dangling.txt');
    symlinkSync(join(dir, 'nowhere.txt'), dangling);
    for (const p of [link, victim, dangling]) {
      let err: unknown;
      try {
        new LostKeys(silentLogger(), p, undefined);
      } catch (e) {
        err = e;
      }
      expect((err as { exitCode?: number }).exitCode).toBe(2);
      expect((err as Error).message).toContain(`--report ${p}: it already exists`);
    }
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(statSync(victim).mode & 0o777).toBe(0o644);
  });

  it('creates the report new, readable by the owner only (0600)', () => {
    const dir = tempDir();
    const file = join(dir, 'report.txt');
    const lost = new LostKeys(silentLogger(), file, undefined);
    lost.add(0, B('k'), 'NOPERM');
    lost.flush();
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // reset() (a new full sync) empties the file it created, through its own descriptor.
    lost.reset();
    lost.add(1, B('again'), 'NOPERM');
    lost.flush();
    expect(readFileSync(file, 'utf8')).toBe('1\tagain\tNOPERM\n');
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('defaultReportPath is under the given dir, named after the time', () => {
    expect(defaultReportPath('/spool', new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 6)))).toBe('/spool/replicant-lost-keys-2026-01-02T03-04-05-006Z.txt');
  });
});

describe('describeShortfall', () => {
  const none = { snapshotUnfinished: false, keysRead: 0, rdbBytes: 0, rdbTotalBytes: null, lostKeys: 0, report: null, skippedCommands: 0 };
  it('says why the copy is incomplete and what the next run does', () => {
    expect(isShort(none)).toBe(false);
    const s = { ...none, snapshotUnfinished: true, keysRead: 630, rdbBytes: 100, rdbTotalBytes: 1000, lostKeys: 2, report: '/tmp/r.txt', skippedCommands: 3 };
    expect(isShort(s)).toBe(true);
    expect(describeShortfall(s)).toBe(
      'the copy is incomplete: stopped during the full sync (630 keys, 100 of 1000 RDB bytes read from the source, not all of them applied): ' +
        'the copy on the target is incomplete; the checkpoint says full-sync, so the next run copies the snapshot again; 2 keys of the snapshot were not written to the target (listed in /tmp/r.txt); ' +
        '3 commands of the stream were left out (rejected by the target, or not applicable exactly: --on-error skip; see the log)',
    );
  });
});
