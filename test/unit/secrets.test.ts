/** Passwords from files and the environment, URL redaction, and the option parsers that refuse nonsense. */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readPasswordFile, resolvePasswords, withPassword, withSentinelPassword, withoutPassword } from '../../src/cli/secrets.js';
import { parsePositiveDuration } from '../../src/cli/options.js';
import { redactUrl } from '../../src/observe/redact.js';
import { parseSourceUrl } from '../../src/replication/source.js';
import { parseRedisUrl } from '../../src/replication/url.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'replicant-secrets-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string, mode = 0o600): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  chmodSync(p, mode);
  return p;
}

describe('redactUrl', () => {
  it.each([
    ['redis://u:s3cret@h:1/2', 'redis://u:***@h:1/2'],
    ['redis://:p@ss@h:1', 'redis://:***@h:1'],
    ['redis://h:1', 'redis://h:1'],
    ['redis://user@h:1', 'redis://user@h:1'],
    ['sentinel://u:node-pw@h:1,h:2/m?sentinelPassword=sent-pw', 'sentinel://u:***@h:1,h:2/m?sentinelPassword=***'],
    ['sentinel://h:1/m?sentinelPassword=a%40b&x=1', 'sentinel://h:1/m?sentinelPassword=***&x=1'],
    ['sentinel://h:1/m@x', 'sentinel://h:1/m@x'],
  ])('%s -> %s', (url, shown) => {
    expect(redactUrl(url)).toBe(shown);
  });
});

describe('passwords from files and the environment', () => {
  it('puts a file password into a URL without one, escaped, and the parser reads it back', () => {
    const f = file('pw', 'p@ss:/word\n');
    const url = withPassword('redis://alice@127.0.0.1:7000', 'target', f, {});
    expect(url).not.toContain('p@ss:/word');
    expect(parseRedisUrl(url)).toMatchObject({ username: 'alice', password: 'p@ss:/word', port: 7000 });
  });

  it('uses the environment when there is no file and the URL has no password', () => {
    const env = { REPLICANT_SOURCE_PASSWORD: 'from-env', REPLICANT_TARGET_PASSWORD: 't-env' };
    const r = resolvePasswords({ source: 'redis://127.0.0.1:1', target: 'redis://127.0.0.1:2' }, env);
    expect(parseRedisUrl(r.source).password).toBe('from-env');
    expect(parseRedisUrl(r.target).password).toBe('t-env');
  });

  it('a URL password wins over the environment; a URL password and a file are refused as ambiguous', () => {
    expect(parseRedisUrl(withPassword('redis://:in-url@h:1', 'source', undefined, { REPLICANT_SOURCE_PASSWORD: 'env' })).password).toBe('in-url');
    const f = file('pw', 'x\n');
    expect(() => withPassword('redis://:in-url@h:1', 'source', f, {})).toThrow(/both in the URL and by --source-password-file/);
  });

  it('a file wins over the environment', () => {
    const f = file('pw', 'from-file\r\n');
    expect(parseRedisUrl(withPassword('redis://h:1', 'source', f, { REPLICANT_SOURCE_PASSWORD: 'env' })).password).toBe('from-file');
  });

  it('sentinel: the node password and sentinelPassword both come from outside argv', () => {
    const env = { REPLICANT_SOURCE_PASSWORD: 'node-pw', REPLICANT_SENTINEL_PASSWORD: 's&p=w' };
    const r = resolvePasswords({ source: 'sentinel://127.0.0.1:26379/mymaster', target: 'redis://h:1' }, env);
    const spec = parseSourceUrl(r.source);
    expect(spec.kind === 'sentinel' && spec.sentinel).toMatchObject({ password: 'node-pw', sentinelPassword: 's&p=w', masterName: 'mymaster' });
    expect(withSentinelPassword('sentinel://h:1/m?sentinelPassword=u', undefined, env)).toBe('sentinel://h:1/m?sentinelPassword=u');
    expect(() => withSentinelPassword('redis://h:1', file('s', 'x'), {})).toThrow(/needs a sentinel:\/\/ source/);
  });

  it('refuses a file readable by group or others, an empty file and several lines', () => {
    expect(() => readPasswordFile(file('open', 'pw\n', 0o644), '--target-password-file')).toThrow(/readable by group or others \(mode 644\); run chmod 600/);
    expect(() => readPasswordFile(file('empty', '\n'), '--target-password-file')).toThrow(/empty/);
    expect(() => readPasswordFile(file('two', 'a\nb\n'), '--target-password-file')).toThrow(/one line/);
    expect(() => readPasswordFile(join(dir, 'missing'), '--target-password-file')).toThrow(/--target-password-file .*missing/);
    expect(readPasswordFile(file('ok', 'pw\n', 0o400), '--x')).toBe('pw');
  });
});

describe('option parsers', () => {
  it('parsePositiveDuration refuses 0 and takes units', () => {
    expect(() => parsePositiveDuration('0')).toThrow(/above zero/);
    expect(() => parsePositiveDuration('0s')).toThrow(/above zero/);
    expect(parsePositiveDuration('1s')).toBe(1000);
  });
});

describe('withoutPassword', () => {
  it('takes the password out of a URL (decoded), keeping the user; a URL without one is unchanged', () => {
    expect(withoutPassword('redis://alice:p%40ss@h:1/2')).toEqual({ url: 'redis://alice@h:1/2', password: 'p@ss' });
    expect(withoutPassword('redis://:secret@h:1')).toEqual({ url: 'redis://h:1', password: 'secret' });
    expect(withoutPassword('redis://alice@h:1')).toEqual({ url: 'redis://alice@h:1', password: undefined });
    // Round trip through the environment variable the child reads.
    const { url, password } = withoutPassword('redis://bob:pw@h:1');
    expect(withPassword(url, 'source', undefined, { REPLICANT_SOURCE_PASSWORD: password })).toBe('redis://bob:pw@h:1');
  });
});
