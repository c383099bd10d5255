/**
 * The repository's Dockerfile and .dockerignore read as data, for the deployment tests: stages and
 * their instructions, and the build context an allow-list .dockerignore leaves. Only the forms the
 * Dockerfile uses are accepted (anything else throws), so a change to it that the tests cannot follow
 * fails them instead of passing unchecked.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './cli.js';

export interface Instruction {
  op: 'WORKDIR' | 'COPY' | 'RUN' | 'ENV' | 'USER' | 'EXPOSE' | 'ENTRYPOINT' | 'CMD';
  args: string;
  line: number;
}

export interface Stage {
  image: string;
  name: string | undefined;
  instructions: Instruction[];
}

const OPS = new Set(['WORKDIR', 'COPY', 'RUN', 'ENV', 'USER', 'EXPOSE', 'ENTRYPOINT', 'CMD']);

export function readDockerfile(): Stage[] {
  return parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
}

export function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = i + 1;
    let joined = lines[i]!.trim();
    if (joined === '' || joined.startsWith('#')) continue;
    while (joined.endsWith('\\')) {
      i++;
      if (i >= lines.length) throw new Error(`Dockerfile line ${line}: continuation at the end of the file`);
      const next = lines[i]!.trim();
      joined = joined.slice(0, -1) + (next.startsWith('#') ? '' : ` ${next}`);
    }
    const m = /^([A-Z]+)\s+(.*)$/.exec(joined);
    if (m === null) throw new Error(`Dockerfile line ${line}: expected an upper-case instruction: ${joined}`);
    const [, op, args] = m as unknown as [string, string, string];
    if (op === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (f === null) throw new Error(`Dockerfile line ${line}: FROM <image> [AS <name>] expected`);
      stages.push({ image: f[1]!, name: f[2], instructions: [] });
      continue;
    }
    if (!OPS.has(op)) throw new Error(`Dockerfile line ${line}: ${op} is not handled by the tests`);
    const stage = stages[stages.length - 1];
    if (stage === undefined) throw new Error(`Dockerfile line ${line}: ${op} before FROM`);
    stage.instructions.push({ op: op as Instruction['op'], args, line });
  }
  return stages;
}

/** The arguments of an exec-form (JSON array) instruction; throws for the shell form. */
export function execForm(ins: Instruction): string[] {
  const v: unknown = JSON.parse(ins.args);
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw new Error(`Dockerfile line ${ins.line}: ${ins.op} is not in exec form`);
  return v;
}

export interface Copy {
  from: string | undefined;
  sources: string[];
  dest: string;
}

/** `COPY [--from=<stage>] <src>... <dest>` (the shell form, no other flags). */
export function parseCopy(ins: Instruction): Copy {
  const words = ins.args.split(/\s+/);
  let from: string | undefined;
  if (words[0]!.startsWith('--from=')) from = words.shift()!.slice('--from='.length);
  if (words.some((w) => w.startsWith('--') || /[*?[]/.test(w))) throw new Error(`Dockerfile line ${ins.line}: COPY flags other than --from, or wildcards, are not handled`);
  if (words.length < 2) throw new Error(`Dockerfile line ${ins.line}: COPY <src>... <dest> expected`);
  return { from, sources: words.slice(0, -1), dest: words[words.length - 1]! };
}

/** `ENV k=v [k=v...]` without quotes. */
export function parseEnv(ins: Instruction): Record<string, string> {
  const out: Record<string, string> = {};
  for (const w of ins.args.split(/\s+/)) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=([^"'\s]*)$/.exec(w);
    if (m === null) throw new Error(`Dockerfile line ${ins.line}: ENV k=v expected, found ${w}`);
    out[m[1]!] = m[2]!;
  }
  return out;
}

/**
 * The paths a .dockerignore of the allow-list form (`*`, then `!path` lines) lets into the build
 * context; other forms throw.
 */
export function readContextAllowList(): string[] {
  const lines = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  if (lines[0] !== '*') throw new Error('.dockerignore: expected the allow-list form, starting with "*"');
  return lines.slice(1).map((l) => {
    if (!/^!([A-Za-z0-9._-]+)$/.test(l)) throw new Error(`.dockerignore: expected "!<top-level name>", found ${l}`);
    return l.slice(1);
  });
}
