/**
 * The cluster side of a verify without servers: routing by slot, pipelines split by node and put
 * back in order, MOVED / ASK followed, SCAN over every master. A small in-memory cluster answers
 * like Redis does (MOVED for a slot a node does not serve, ASK + ASKING for a migrating one).
 */
import { describe, expect, it } from 'vitest';
import { ClusterRouter, parseScanCursor, routingKey, type NodeTransport } from '../../src/verify/cluster-router.js';
import { keySlot } from '../../src/commands/slot.js';
import type { Arg } from '../../src/resp/encode.js';

const A = '127.0.0.1:7001';
const B = '127.0.0.1:7002';
const C = '127.0.0.1:7003';

/** Three masters; `owner` is the truth, `announced` what CLUSTER SLOTS says (they differ after a move nobody told the seed of). */
class FakeCluster implements NodeTransport {
  readonly data = new Map<string, Map<string, string>>([[A, new Map()], [B, new Map()], [C, new Map()]]);
  owner = (slot: number) => (slot <= 5460 ? A : slot <= 10922 ? B : C);
  announced = (slot: number) => this.owner(slot);
  /** Slots being migrated: keys not found on the owner are ASKed to this node. */
  migrating = new Map<number, string>();
  readonly sent: { addr: string; commands: string[][] }[] = [];

  set(key: string, value: string): void {
    this.data.get(this.owner(keySlot(Buffer.from(key))))!.set(key, value);
  }

  async exec(addr: string, commands: Arg[][]): Promise<unknown[]> {
    const cmds = commands.map((c) => c.map((a) => a.toString()));
    this.sent.push({ addr, commands: cmds });
    let asking = false;
    return cmds.map((c) => {
      const wasAsking = asking;
      asking = false;
      const name = c[0]!.toUpperCase();
      if (name === 'ASKING') {
        asking = true;
        return 'OK';
      }
      if (name === 'CLUSTER') return this.slotsReply();
      if (name === 'INFO') return `# Server from ${addr}`;
      const node = this.data.get(addr)!;
      if (name === 'SCAN') {
        // Two keys a page; the cursor is an index into the node's keys.
        const keys = [...node.keys()].sort();
        const from = Number(c[1]);
        const next = from + 2 >= keys.length ? '0' : String(from + 2);
        return [Buffer.from(next), keys.slice(from, from + 2).map((k) => Buffer.from(k))];
      }
      if (name === 'DEBUG') return c.slice(2).map((k) => (node.has(k) ? `digest:${k}` : '0'.repeat(40)));
      const key = c[1]!;
      const slot = keySlot(Buffer.from(key));
      const importing = wasAsking && [...this.migrating.values()].includes(addr);
      if (this.owner(slot) !== addr && !importing) return new Error(`MOVED ${slot} ${this.owner(slot)}`);
      const target = this.migrating.get(slot);
      if (target !== undefined && !node.has(key) && !importing) return new Error(`ASK ${slot} ${target}`);
      return node.get(key) ?? null;
    });
  }

  private slotsReply(): unknown[] {
    const out: unknown[] = [];
    let start = 0;
    for (let s = 1; s <= 16384; s++) {
      if (s === 16384 || this.announced(s) !== this.announced(start)) {
        const [host, port] = this.announced(start).split(':');
        out.push([start, s - 1, [host, Number(port), 'id']]);
        start = s;
      }
    }
    return out;
  }
}

/** A key whose slot is served by `addr` in the default layout. */
function keyOn(addr: string, n: number): string {
  const owner = (slot: number) => (slot <= 5460 ? A : slot <= 10922 ? B : C);
  for (let i = 0; ; i++) {
    const k = `key:${n}:${i}`;
    if (owner(keySlot(Buffer.from(k))) === addr) return k;
  }
}

async function router(cluster: FakeCluster): Promise<ClusterRouter> {
  const r = new ClusterRouter(cluster, A, (e) => e);
  await r.refresh();
  return r;
}

describe('routingKey', () => {
  it('finds the key of the commands verify sends', () => {
    expect(routingKey(['TYPE', 'k'])?.toString()).toBe('k');
    expect(routingKey(['XINFO', 'STREAM', 's'])?.toString()).toBe('s');
    expect(routingKey(['MEMORY', 'USAGE', 'm', 'SAMPLES', '0'])?.toString()).toBe('m');
    expect(routingKey(['DEBUG', 'DIGEST-VALUE', 'a', 'b'])?.toString()).toBe('a');
    expect(routingKey(['DEBUG', 'DIGEST'])).toBeUndefined();
    expect(routingKey(['INFO', 'keyspace'])).toBeUndefined();
    expect(routingKey(['RANDOMKEY'])).toBeUndefined();
  });
});

describe('ClusterRouter', () => {
  it('discovers the masters and sends each key to its slot owner, replies in the order asked', async () => {
    const cl = new FakeCluster();
    const keys = [keyOn(C, 1), keyOn(A, 2), keyOn(B, 3), keyOn(A, 4), keyOn(C, 5)];
    keys.forEach((k) => cl.set(k, `v-${k}`));
    const r = await router(cl);
    expect([...r.masters].sort()).toEqual([A, B, C]);
    cl.sent.length = 0;
    const replies = await r.pipeline([...keys.map((k) => ['GET', k]), ['INFO']]);
    expect(replies.slice(0, 5)).toEqual(keys.map((k) => `v-${k}`));
    // One pipeline per node, each with only its own keys (the keyless INFO goes to one master).
    expect(cl.sent).toHaveLength(3);
    for (const { addr, commands } of cl.sent) {
      for (const c of commands.filter((c) => c[0] === 'GET')) expect(cl.owner(keySlot(Buffer.from(c[1]!)))).toBe(addr);
    }
  });

  it('groups keys by node for DEBUG DIGEST-VALUE', async () => {
    const r = await router(new FakeCluster());
    const keys = [keyOn(A, 1), keyOn(B, 2), keyOn(A, 3), keyOn(C, 4)].map((k) => Buffer.from(k));
    expect(r.groupByNode(keys)).toEqual([[0, 2], [1], [3]]);
  });

  it('follows MOVED after a slot moved: the reply, not the redirect, comes back', async () => {
    const cl = new FakeCluster();
    const r = await router(cl);
    const k = keyOn(A, 7);
    const slot = keySlot(Buffer.from(k));
    // The slot moves to C; the seed's CLUSTER SLOTS still says A (gossip not there yet).
    const before = cl.owner;
    cl.owner = (s) => (s === slot ? C : before(s));
    cl.announced = before;
    cl.set(k, 'moved-value');
    expect(await r.pipeline([['GET', k], ['GET', keyOn(B, 8)]])).toEqual(['moved-value', null]);
    // The MOVED taught the router: the next read goes to C directly.
    cl.sent.length = 0;
    expect(await r.pipeline([['GET', k]])).toEqual(['moved-value']);
    expect(cl.sent.map((s) => s.addr)).toEqual([C]);
  });

  it('follows ASK with ASKING during a migration, without changing the slot map', async () => {
    const cl = new FakeCluster();
    const r = await router(cl);
    const k = keyOn(A, 9);
    const slot = keySlot(Buffer.from(k));
    cl.migrating.set(slot, B);
    cl.data.get(B)!.set(k, 'migrated'); // already moved to B, not on A any more
    expect(await r.pipeline([['GET', k]])).toEqual(['migrated']);
    expect(cl.sent.at(-1)).toEqual({ addr: B, commands: [['ASKING'], ['GET', k]] });
    cl.sent.length = 0;
    await r.pipeline([['GET', k]]);
    expect(cl.sent[0]!.addr).toBe(A);
  });

  it('gives an error reply back after too many redirects', async () => {
    const cl = new FakeCluster();
    const r = await router(cl);
    const k = keyOn(A, 10);
    // Every node says the key is elsewhere.
    const real = cl.exec.bind(cl);
    cl.exec = async (addr, commands) => (commands[0]![0] === 'CLUSTER' ? real(addr, commands) : commands.map(() => new Error(`MOVED ${keySlot(Buffer.from(k))} ${addr === A ? B : A}`)));
    const [reply] = await r.pipeline([['GET', k]]);
    expect(reply).toBeInstanceOf(Error);
    expect((reply as Error).message).toMatch(/^MOVED /);
  });

  it('SCANs every master in address order behind one cursor', async () => {
    const cl = new FakeCluster();
    const all = [1, 2, 3, 4, 5].flatMap((n) => [keyOn(A, n), keyOn(B, n), keyOn(C, n)]);
    all.forEach((k) => cl.set(k, 'v'));
    const r = await router(cl);
    const seen: string[] = [];
    const cursors: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await r.scanPage(cursor, ['COUNT', 2]);
      seen.push(...keys.map((k) => k.toString()));
      cursors.push(next);
      cursor = next;
    } while (cursor !== '0');
    expect(seen.sort()).toEqual([...all].sort());
    // 5 keys a node, 2 a page: 3 pages per node, the last one ends the walk.
    expect(cursors).toEqual([`2@${A}`, `4@${A}`, `0@${B}`, `2@${B}`, `4@${B}`, `0@${C}`, `2@${C}`, `4@${C}`, '0']);
  });

  it('SCAN goes on with the next node when the one in the cursor left the cluster', async () => {
    const cl = new FakeCluster();
    cl.set(keyOn(C, 1), 'v');
    const r = await router(cl);
    const [next, keys] = await r.scanPage(`4@127.0.0.1:7002.5`, ['COUNT', 2]);
    expect(next).toBe('0');
    expect(keys.map(String)).toEqual([keyOn(C, 1)]);
  });

  it('refuses a cursor it did not make', () => {
    expect(parseScanCursor('0')).toEqual({ node: null, cursor: '0' });
    expect(parseScanCursor(`12@${B}`)).toEqual({ node: B, cursor: '12' });
    expect(() => parseScanCursor('17')).toThrow(/not a cluster SCAN cursor/);
  });

  it('names the side when no node gives a usable slot map', async () => {
    const cl = new FakeCluster();
    cl.exec = async () => [new Error('ERR This instance has cluster support disabled')];
    const r = new ClusterRouter(cl, A, (e, what) => new Error(`target x: ${what} failed: ${e.message}`));
    await expect(r.refresh()).rejects.toThrow(/^target x: CLUSTER SLOTS failed: CLUSTER SLOTS refused: ERR This instance/);
  });
});
