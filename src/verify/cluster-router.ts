/**
 * A Redis Cluster side of a verify: its masters (CLUSTER SLOTS), each key's command sent to the
 * master of the key's slot, a pipeline split by node and its replies put back in order, SCAN
 * walked node after node behind one composite cursor. A -MOVED reply (a slot moved while we
 * read) refreshes the slot map and re-sends the command; -ASK (a slot being migrated) sends it
 * once to the named node after ASKING. Nothing here opens sockets: `NodeTransport` does.
 */
import { argBuffer, commandName, slotKeyIndex } from '../commands/keys.js';
import type { Arg } from '../resp/encode.js';
import { NO_NODE, parseClusterSlots, parseRedirect, splitAddress, type Redirect, type SlotTable } from '../writer/cluster/topology.js';
import { keySlot } from '../commands/slot.js';

export interface NodeTransport {
  /** One pipeline on the node at `addr` ("host:port"); each result is the reply, or an Error for an error reply. Other failures throw. */
  exec(addr: string, commands: Arg[][]): Promise<unknown[]>;
}

/** Rounds of MOVED / ASK following for one command before its last reply is given back. */
const MAX_REDIRECTS = 5;

/** The key a command is routed by. */
export function routingKey(args: readonly Arg[]): Buffer | undefined {
  const i = slotKeyIndex(commandName(args), args);
  return i < 0 ? undefined : argBuffer(args[i]!);
}

/** `cursor@host:port` of SCAN over several nodes; "0" before the first node and after the last. */
export function parseScanCursor(cursor: string): { node: string | null; cursor: string } {
  if (cursor === '0') return { node: null, cursor: '0' };
  const at = cursor.indexOf('@');
  if (at <= 0 || !/^\d+$/.test(cursor.slice(0, at))) throw new Error(`not a cluster SCAN cursor: ${JSON.stringify(cursor)}`);
  return { node: cursor.slice(at + 1), cursor: cursor.slice(0, at) };
}

export class ClusterRouter {
  private table: SlotTable = { slots: new Uint16Array(0), masters: [] };
  private refreshing: Promise<void> | undefined;

  /** `seed`: the "host:port" the URL names; `fail`: how a broken topology is reported (SourceError / TargetError). */
  constructor(
    private readonly io: NodeTransport,
    private readonly seed: string,
    private readonly fail: (e: Error, what: string) => Error,
  ) {}

  /** "host:port" of every master, as the cluster announces them. */
  get masters(): readonly string[] {
    return this.table.masters;
  }

  /** Reads the slot map from the seed, or from a known master when the seed is gone. */
  refresh(): Promise<void> {
    this.refreshing ??= this.readTable().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async readTable(): Promise<void> {
    let last: unknown;
    for (const addr of [this.seed, ...this.table.masters.filter((m) => m !== this.seed)]) {
      try {
        const [reply] = await this.io.exec(addr, [['CLUSTER', 'SLOTS']]);
        if (reply instanceof Error) throw new Error(`CLUSTER SLOTS refused: ${reply.message}`);
        const t = parseClusterSlots(reply, splitAddress(addr).host);
        this.table = t;
        return;
      } catch (e) {
        last = e;
      }
    }
    // parseClusterSlots names a "cluster target"; this may be the source.
    const msg = ((last as Error)?.message ?? String(last)).replace(/^cluster target: /, '');
    throw this.fail(new Error(msg, { cause: last }), 'CLUSTER SLOTS');
  }

  /** The master serving `key`'s slot. */
  nodeOf(key: Buffer): string {
    const i = this.table.slots[keySlot(key)]!;
    return i === NO_NODE ? this.table.masters[0]! : this.table.masters[i]!;
  }

  /** Where a command goes: its key's master, or the first master for a keyless one. */
  private route(args: readonly Arg[]): string {
    const key = routingKey(args);
    return key === undefined ? this.table.masters[0]! : this.nodeOf(key);
  }

  /** The lowest slot each master serves. */
  firstSlots(): number[] {
    const first = new Map<number, number>();
    this.table.slots.forEach((m, slot) => {
      if (m !== NO_NODE && !first.has(m)) first.set(m, slot);
    });
    return [...first.values()];
  }

  /** A slot now served by the node a MOVED named. */
  private learn(m: Redirect): void {
    let i = this.table.masters.indexOf(m.addr);
    if (i < 0) i = this.table.masters.push(m.addr) - 1;
    this.table.slots[m.slot] = i;
  }

  /** Indices of `keys` grouped by the master that serves them, in first-seen order. */
  groupByNode(keys: readonly Buffer[]): number[][] {
    const groups = new Map<string, number[]>();
    keys.forEach((k, i) => {
      const addr = this.nodeOf(k);
      const g = groups.get(addr);
      if (g) g.push(i);
      else groups.set(addr, [i]);
    });
    return [...groups.values()];
  }

  /** The commands, each on its node (one pipeline per node, all at once), replies in the order given. */
  async pipeline(commands: readonly Arg[][]): Promise<unknown[]> {
    const out: unknown[] = new Array(commands.length);
    let todo = commands.map((_, i) => i);
    const asked = new Map<number, string>();
    for (let round = 0; todo.length > 0; round++) {
      const byNode = new Map<string, number[]>();
      for (const i of todo) {
        const addr = asked.get(i) ?? this.route(commands[i]!);
        const list = byNode.get(addr);
        if (list) list.push(i);
        else byNode.set(addr, [i]);
      }
      const redo: number[] = [];
      const moved: Redirect[] = [];
      await Promise.all(
        [...byNode].map(async ([addr, idx]) => {
          // An ASK is answered only after ASKING on the same connection, just before the command.
          const cmds = idx.flatMap((i) => (asked.has(i) ? [['ASKING'], commands[i]!] : [commands[i]!]));
          const replies = await this.io.exec(addr, cmds);
          let r = 0;
          for (const i of idx) {
            if (asked.has(i)) r++;
            const reply = replies[r++];
            asked.delete(i);
            const redirect = reply instanceof Error && round < MAX_REDIRECTS ? parseRedirect(reply.message, splitAddress(addr).host) : undefined;
            if (redirect === undefined) out[i] = reply;
            else {
              if (redirect.kind === 'ASK') asked.set(i, redirect.addr);
              else moved.push(redirect);
              redo.push(i);
            }
          }
        }),
      );
      if (moved.length > 0) {
        await this.refresh();
        // The node that answered CLUSTER SLOTS may not know of the move yet: the MOVED replies do.
        for (const m of moved) this.learn(m);
      }
      todo = redo;
    }
    return out;
  }

  /**
   * One SCAN page of the whole cluster: the masters in address order, each scanned to its end.
   * `extra`: MATCH / COUNT / TYPE arguments. Returns the next composite cursor ("0" at the end).
   */
  async scanPage(cursor: string, extra: readonly Arg[]): Promise<[string, Buffer[]]> {
    const order = [...this.table.masters].sort();
    const at = parseScanCursor(cursor);
    // A node that left the cluster meanwhile: go on with the next one in address order.
    const node = at.node === null ? order[0]! : order.includes(at.node) ? at.node : order.find((m) => m > at.node!);
    if (node === undefined) return ['0', []];
    const [reply] = await this.io.exec(node, [['SCAN', node === at.node ? at.cursor : '0', ...extra]]);
    if (reply instanceof Error) throw reply;
    const [next, keys] = reply as [Buffer, Buffer[]];
    const n = next.toString();
    if (n !== '0') return [`${n}@${node}`, keys];
    const following = order.find((m) => m > node);
    return [following === undefined ? '0' : `0@${following}`, keys];
  }
}
