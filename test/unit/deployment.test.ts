/**
 * The deployment files without Docker or Kubernetes: docker-compose.yml, the Kubernetes example in
 * the README (section Deployment) and the Dockerfile, read as data. Their `replicant sync` command
 * lines go through the real option parser of the sync command. (The Dockerfile's build steps run in
 * test/integration/docker-build-steps.test.ts.)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { registerSyncCommand } from '../../src/cli/sync.js';
import type { SyncCliOptions } from '../../src/cli/sync-run.js';
import { PASSWORD_ENV } from '../../src/cli/secrets.js';
import { parseRedisUrl } from '../../src/replication/url.js';
import { ROOT } from '../helpers/cli.js';
import { execForm, parseCopy, parseEnv, readContextAllowList, readDockerfile, type Stage } from '../helpers/dockerfile.js';
import { parseYaml, parseYamlDocuments, type YamlValue } from '../helpers/yaml-subset.js';

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string>; engines: { node: string } };

/** `args` parsed by the options of `replicant sync` (as main.ts registers them); the action does not run. */
async function parseSync(args: string[]): Promise<SyncCliOptions> {
  let errors = '';
  const program = new Command().exitOverride().configureOutput({ writeOut: () => {}, writeErr: (s) => { errors += s; } });
  registerSyncCommand(program);
  let parsed: SyncCliOptions | undefined;
  program.commands.find((c) => c.name() === 'sync')!.action((o: SyncCliOptions) => { parsed = o; });
  try {
    await program.parseAsync(args, { from: 'user' });
  } catch (e) {
    throw new Error(`replicant ${args.join(' ')}: ${errors || (e as Error).message}`);
  }
  if (parsed === undefined) throw new Error(`replicant ${args.join(' ')}: not a sync command`);
  for (const url of [parsed.source, parsed.target]) {
    if ((parseRedisUrl(url).db ?? 0) !== 0) throw new Error(`${url}: a /db is refused by replicant sync`);
  }
  return parsed;
}

type Obj = { [key: string]: YamlValue };
function obj(v: YamlValue | undefined, what: string): Obj {
  if (v === null || v === undefined || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${what}: expected a mapping, found ${JSON.stringify(v)}`);
  return v;
}
function list(v: YamlValue | undefined, what: string): YamlValue[] {
  if (!Array.isArray(v)) throw new Error(`${what}: expected a sequence, found ${JSON.stringify(v)}`);
  return v;
}
function strings(v: YamlValue | undefined, what: string): string[] {
  const l = list(v, what);
  if (!l.every((s) => typeof s === 'string')) throw new Error(`${what}: expected strings only, found ${JSON.stringify(l)}`);
  return l as string[];
}
/** Seconds of a Compose duration (`60s`, `1m30s`). */
function seconds(d: YamlValue | undefined): number {
  const m = /^(?:(\d+)m)?(?:(\d+)s)?$/.exec(String(d));
  if (m === null || d === '') throw new Error(`not a duration: ${String(d)}`);
  return Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0);
}

const finalStage = (): Stage => readDockerfile().at(-1)!;
const exposed = (): number[] => finalStage().instructions.filter((i) => i.op === 'EXPOSE').flatMap((i) => i.args.split(/\s+/).map((p) => Number(p.replace(/\/tcp$/, ''))));

describe('yaml-subset (the parser these tests use)', () => {
  it('reads block and flow collections, quoted and plain scalars, documents', () => {
    const docs = parseYamlDocuments('a: 1\nb:\n- x\n- k: "v # not a comment"\n  n: [1, \'it\'\'s\', { p: q }]\n---\nc: {}  # comment\n');
    expect(docs).toEqual([{ a: 1, b: ['x', { k: 'v # not a comment', n: [1, "it's", { p: 'q' }] }] }, { c: {} }]);
  });

  it('refuses what it does not handle or what YAML 1.1 and 1.2 read differently', () => {
    for (const bad of ['a: &x 1', 'a: *x', 'a: !!str 1', 'a: |\n  t', 'a: yes', 'a: 0400', 'a: 6380:6379', 'a: True', 'a: 1\na: 2', 'a:\n\tb: 1', 'a: b: c', 'a: [1,\n  2]']) {
      expect(() => parseYaml(bad), bad).toThrow();
    }
  });
});

describe('docker-compose.yml', () => {
  const compose = obj(parseYaml(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')), 'compose');
  const services = obj(compose.services, 'services');
  const replicant = obj(services.replicant, 'services.replicant');

  it('builds the Dockerfile and keeps its entry point', () => {
    expect(obj(replicant.build, 'build')).toEqual({ context: '.', dockerfile: 'Dockerfile' });
    expect(replicant.image).toBeUndefined();
    expect(replicant.entrypoint).toBeUndefined();
    expect(replicant.volumes).toBeUndefined();
  });

  it('runs a valid `replicant sync` between its source and target services, with the metrics endpoint published', async () => {
    const args = strings(replicant.command, 'command');
    expect(args[0]).toBe('sync');
    const o = await parseSync(args);
    const source = parseRedisUrl(o.source);
    const target = parseRedisUrl(o.target);
    expect(Object.keys(services)).toEqual(expect.arrayContaining([source.host, target.host]));
    expect(o.metricsHost).toBe('0.0.0.0');
    expect(exposed()).toContain(o.metricsPort);
    expect(strings(replicant.ports, 'ports')).toEqual([`127.0.0.1:${o.metricsPort}:${o.metricsPort}`]);
    expect(strings(obj(replicant.healthcheck, 'healthcheck').test, 'healthcheck.test').join(' ')).toContain(`http://127.0.0.1:${o.metricsPort}/healthz`);
  });

  it('starts the sync once both servers are healthy, restarts it on failure, stops it with SIGTERM and time to finish', () => {
    for (const name of ['source', 'target']) {
      const s = obj(services[name], name);
      expect(strings(obj(s.healthcheck, `${name}.healthcheck`).test, 'test')).toEqual(['CMD', 'redis-cli', 'ping']);
      expect(obj(replicant.depends_on, 'depends_on')[name]).toEqual({ condition: 'service_healthy' });
    }
    expect(replicant.restart).toBe('on-failure');
    expect(replicant.stop_signal).toBe('SIGTERM');
    expect(seconds(replicant.stop_grace_period)).toBeGreaterThanOrEqual(30);
  });
});

describe('the Kubernetes example in the README', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = /\n## Deployment\n([\s\S]*?)\n## /.exec(readme)?.[1] ?? '';
  const blocks = [...section.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const docs = blocks.flatMap((b) => parseYamlDocuments(b)).map((d, i) => obj(d, `document ${i}`));
  const deployment = docs.find((d) => d.kind === 'Deployment')!;

  it('is a Deployment of several replicas whose pod template matches its selector', () => {
    expect(blocks.length).toBeGreaterThan(0);
    expect(deployment).toBeDefined();
    expect(deployment.apiVersion).toBe('apps/v1');
    const spec = obj(deployment.spec, 'spec');
    expect(spec.replicas).toBeGreaterThanOrEqual(2);
    expect(obj(obj(spec.template, 'template').metadata, 'metadata').labels).toEqual(obj(spec.selector, 'selector').matchLabels);
  });

  const podSpec = () => obj(obj(obj(deployment.spec, 'spec').template, 'template').spec, 'pod spec');
  const container = () => {
    const containers = list(podSpec().containers, 'containers');
    expect(containers).toHaveLength(1);
    return obj(containers[0], 'container');
  };

  it("passes a valid `replicant sync` command line to the image's entry point, no password in it", async () => {
    const c = container();
    expect(c.command).toBeUndefined();
    const args = strings(c.args, 'args');
    expect(args[0]).toBe('sync');
    const o = await parseSync(args);
    expect(o.name).toBeDefined();
    expect(o.metricsHost).toBe('0.0.0.0');
    expect(exposed()).toContain(o.metricsPort);
    for (const url of [o.source, o.target]) expect(parseRedisUrl(url).password).toBeUndefined();
  });

  it('probes /healthz on the metrics port, and has Prometheus scrape /metrics there', async () => {
    const c = container();
    const o = await parseSync(strings(c.args, 'args'));
    const ports = list(c.ports, 'ports').map((p) => obj(p, 'port'));
    const portOf = (p: YamlValue | undefined) => (typeof p === 'number' ? p : ports.find((q) => q.name === p)?.containerPort);
    expect(ports.map((p) => p.containerPort)).toContain(o.metricsPort);
    for (const probe of ['readinessProbe', 'livenessProbe']) {
      const get = obj(obj(c[probe], probe).httpGet, `${probe}.httpGet`);
      expect(get.path).toBe('/healthz');
      expect(portOf(get.port)).toBe(o.metricsPort);
    }
    const annotations = obj(obj(obj(obj(deployment.spec, 'spec').template, 'template').metadata, 'metadata').annotations, 'annotations');
    expect(annotations).toEqual({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(o.metricsPort), 'prometheus.io/path': '/metrics' });
  });

  it('takes the passwords from a Secret through REPLICANT_*_PASSWORD', () => {
    const env = list(container().env, 'env').map((e) => obj(e, 'env entry'));
    const names = env.map((e) => e.name);
    expect(names).toEqual(expect.arrayContaining([PASSWORD_ENV.source, PASSWORD_ENV.target]));
    const secret = docs.find((d) => d.kind === 'Secret')!;
    const secretName = obj(secret.metadata, 'secret metadata').name;
    const keys = Object.keys(obj(secret.stringData, 'stringData'));
    for (const e of env.filter((x) => Object.values(PASSWORD_ENV).includes(x.name as never))) {
      expect(e.value).toBeUndefined();
      const ref = obj(obj(e.valueFrom, 'valueFrom').secretKeyRef, 'secretKeyRef');
      expect(ref.name).toBe(secretName);
      expect(keys).toContain(ref.key);
    }
  });

  it("runs as a non-root user, read-only, with a writable /tmp for the spool and time for a graceful stop", () => {
    const pod = podSpec();
    const podSec = obj(pod.securityContext, 'pod securityContext');
    expect(podSec.runAsNonRoot).toBe(true);
    expect(podSec.runAsUser).toBeGreaterThan(0);
    expect(obj(container().securityContext, 'container securityContext')).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    const mount = list(container().volumeMounts, 'volumeMounts').map((m) => obj(m, 'mount')).find((m) => m.mountPath === '/tmp')!;
    expect(list(pod.volumes, 'volumes').map((v) => obj(v, 'volume')).find((v) => v.name === mount.name)).toEqual({ name: mount.name, emptyDir: {} });
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(30);
  });
});

describe('Dockerfile', () => {
  const stages = readDockerfile();
  const final = finalStage();
  const ops = (s: Stage, op: string) => s.instructions.filter((i) => i.op === op);

  it('is multi-stage on a Node image that satisfies engines, and runs the package bin as PID 1 under a non-root user', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const engineMin = Number(/^>=(\d+)/.exec(pkg.engines.node)![1]);
    for (const s of stages) {
      const m = /^node:(\d+)-(bookworm-slim|alpine)$/.exec(s.image);
      expect(m, s.image).not.toBeNull();
      expect(Number(m![1])).toBeGreaterThanOrEqual(engineMin);
    }
    expect(new Set(stages.map((s) => s.image)).size).toBe(1);
    expect(ops(final, 'USER').map((i) => i.args)).toEqual(['node']);
    expect(execForm(ops(final, 'ENTRYPOINT')[0]!)).toEqual(['node', pkg.bin.replicant]);
    expect(execForm(ops(final, 'CMD')[0]!)).toEqual(['--help']);
    expect(Object.assign({}, ...ops(final, 'ENV').map(parseEnv))).toMatchObject({ NODE_ENV: 'production' });
  });

  it('copies into the runtime only dist/, the package files and node_modules from an --omit=dev install', () => {
    expect(ops(final, 'RUN')).toEqual([]);
    const copies = ops(final, 'COPY').map(parseCopy);
    expect(copies.flatMap((c) => c.sources.map((s) => s.replace(/^\/app\//, '')))).toEqual(['package.json', 'package-lock.json', 'node_modules', 'dist']);
    const depsStage = stages.find((s) => s.name === copies.find((c) => c.sources.includes('/app/node_modules'))!.from)!;
    expect(ops(depsStage, 'RUN').map((i) => i.args)).toEqual([expect.stringMatching(/^npm ci --omit=dev --ignore-scripts\b/)]);
  });

  it('never runs the prepare script (npm ci --ignore-scripts), and copies only what .dockerignore lets in', () => {
    const allowed = readContextAllowList();
    for (const s of stages) {
      for (const run of ops(s, 'RUN').filter((i) => /\bnpm (ci|install)\b/.test(i.args))) expect(run.args).toContain('--ignore-scripts');
      for (const c of ops(s, 'COPY').map(parseCopy).filter((x) => x.from === undefined)) {
        for (const src of c.sources) expect(allowed).toContain(src.replace(/\/$/, ''));
      }
    }
    expect(allowed).not.toContain('node_modules');
    expect(allowed).not.toContain('dist');
  });
});
