/**
 * The Dockerfile's build steps, run without Docker: each stage is a temp directory standing for its
 * WORKDIR, its COPY instructions copy from the build context .dockerignore leaves (or from an
 * earlier stage's directory) and its RUN commands run there with `sh -c` and the stage's ENV (npm
 * prefers its cache: no network when it holds the packages). Then the last stage's directory, the
 * image's /app, is checked: the CLI runs from it with only the production dependencies, and no
 * development dependency is there or reachable.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';
import { execForm, parseCopy, parseEnv, readContextAllowList, readDockerfile, type Stage } from '../helpers/dockerfile.js';

interface Built {
  dir: string;
  workdir: string;
  env: Record<string, string>;
  entrypoint: string[];
  cmd: string[];
}

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string>; devDependencies: Record<string, string> };

/** The environment of a RUN or of the container: no variable of this test process leaks in (NODE_ENV=test...). */
function baseEnv(stageEnv: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, npm_config_prefer_offline: 'true', npm_config_update_notifier: 'false', ...stageEnv };
}

function buildStage(stage: Stage, index: number, root: string, built: Map<string, Built>, allowed: string[]): Built {
  const dir = join(root, `stage-${index}`);
  mkdirSync(dir);
  const out: Built = { dir, workdir: '', env: {}, entrypoint: [], cmd: [] };
  /** A path inside the stage's WORKDIR, absolute or relative to it, as a path under `b.dir`. */
  const local = (b: Built, p: string, line: number): string => {
    const rel = isAbsolute(p) ? relative(b.workdir, p) : p;
    if (b.workdir === '' || rel.startsWith('..')) throw new Error(`Dockerfile line ${line}: ${p} is outside the WORKDIR`);
    return join(b.dir, rel);
  };
  for (const ins of stage.instructions) {
    switch (ins.op) {
      case 'WORKDIR':
        if (out.workdir !== '' || !isAbsolute(ins.args)) throw new Error(`Dockerfile line ${ins.line}: one absolute WORKDIR per stage expected`);
        out.workdir = ins.args;
        break;
      case 'COPY': {
        const c = parseCopy(ins);
        const from = c.from === undefined ? undefined : built.get(c.from);
        if (c.from !== undefined && from === undefined) throw new Error(`Dockerfile line ${ins.line}: no stage ${c.from} before it`);
        const intoDir = c.dest.endsWith('/') || c.sources.length > 1;
        for (const src of c.sources) {
          if (from === undefined && !allowed.includes(src)) throw new Error(`Dockerfile line ${ins.line}: ${src} is not in the build context (.dockerignore)`);
          const path = from === undefined ? join(ROOT, src) : local(from, src, ins.line);
          const dest = local(out, c.dest, ins.line);
          cpSync(path, intoDir ? join(dest, src.split('/').at(-1)!) : dest, { recursive: true });
        }
        break;
      }
      case 'RUN': {
        const r = spawnSync('sh', ['-c', ins.args], { cwd: local(out, '.', ins.line), env: baseEnv(out.env), encoding: 'utf8', timeout: 120_000 });
        if (r.status !== 0) throw new Error(`Dockerfile line ${ins.line}: RUN ${ins.args} exited ${r.status}: ${r.stderr}`);
        break;
      }
      case 'ENV':
        Object.assign(out.env, parseEnv(ins));
        break;
      case 'ENTRYPOINT':
        out.entrypoint = execForm(ins);
        break;
      case 'CMD':
        out.cmd = execForm(ins);
        break;
      case 'USER':
      case 'EXPOSE':
        break; // checked in test/unit/deployment.test.ts
    }
  }
  return out;
}

let root: string;
let image: Built;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'replicant-image-'));
  const built = new Map<string, Built>();
  const allowed = readContextAllowList();
  readDockerfile().forEach((stage, i) => {
    image = buildStage(stage, i, root, built, allowed);
    if (stage.name !== undefined) built.set(stage.name, image);
  });
}, 180_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The container's command with `args` instead of CMD (as `docker run <image> args...`). */
function run(args: string[] | undefined, timeout = 30_000) {
  const [file, ...rest] = [...image.entrypoint, ...(args ?? image.cmd)];
  return spawnSync(file!, rest, { cwd: image.dir, env: baseEnv(image.env), encoding: 'utf8', timeout });
}

describe("the image's build steps", () => {
  it('leave in /app only dist/, the package files and the production node_modules', () => {
    expect(readdirSync(image.dir).sort()).toEqual(['dist', 'node_modules', 'package-lock.json', 'package.json']);
    expect(existsSync(join(image.dir, 'dist/cli/main.js'))).toBe(true);
    for (const dep of Object.keys(pkg.dependencies)) expect(existsSync(join(image.dir, 'node_modules', dep)), dep).toBe(true);
    for (const dev of [...Object.keys(pkg.devDependencies), 'vitest', 'typescript', '.bin/tsc']) expect(existsSync(join(image.dir, 'node_modules', dev)), dev).toBe(false);
  });

  it('give an image whose entry point runs the CLI: the default command (--help), --version, sync --help', () => {
    const help = run(undefined);
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toContain('Usage: replicant');
    const version = run(['--version']);
    expect(version.stdout.trim()).toBe(pkg.version);
    const syncHelp = run(['sync', '--help']);
    expect(syncHelp.status, syncHelp.stderr).toBe(0);
    expect(syncHelp.stdout).toContain('--metrics-port');
  });

  it('resolve every module of dist/ with the production dependencies only; a development dependency is not reachable', () => {
    const script = [
      "import { readdirSync } from 'node:fs';",
      "const files = readdirSync('dist', { recursive: true }).filter((f) => f.endsWith('.js') && f !== 'cli/main.js');",
      'for (const f of files) await import(`./dist/${f}`);',
      'console.log(files.length);',
      "await import('typescript').then(() => process.exit(3), (e) => { if (e.code !== 'ERR_MODULE_NOT_FOUND') throw e; });",
    ].join('\n');
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: image.dir, env: baseEnv(image.env), encoding: 'utf8', timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(Number(r.stdout.trim())).toBeGreaterThan(50);
  });

  it('run `replicant sync` as far as the source connection (an unreachable source: exit 4)', () => {
    const r = run(['sync', '--source', 'redis://127.0.0.1:1', '--target', 'redis://127.0.0.1:2', '--connect-timeout', '1s', '--no-progress']);
    expect(r.status, r.stderr).toBe(4);
    expect(r.stderr).toContain('127.0.0.1:1');
  });
});
