import { describe, expect, it } from 'vitest';
import { ClusterSource, ShardSource, matchShard, parseClusterNodes, shardsOf, slotRangesText } from '../../src/replication/cluster-source.js';

const NODES = [
  'a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460 [5461-<-b1]',
  'b1 127.0.0.1:7001@17001,host-b master - 0 1700000000000 2 connected 5461-10922',
  'c1 :7002@17002 master - 0 1700000000000 3 connected 10923-16383',
  'a2 127.0.0.1:7003@17003 slave a1 0 1700000000000 1 connected',
  'b2 127.0.0.1:7004@17004 slave,fail b1 0 1700000000000 2 disconnected',
  'd1 127.0.0.1:7005@17005 master,fail - 0 0 4 disconnected',
  'e1 127.0.0.1:7006@17006 master - 0 0 5 connected',
  '',
].join('\n');

describe('cluster source topology', () => {
  it('parses CLUSTER NODES: addresses, flags, masters, slot ranges without migration markers', () => {
    const nodes = parseClusterNodes(NODES, '10.0.0.9');
    expect(nodes.map((n) => [n.id, n.host, n.port, n.masterId])).toEqual([
      ['a1', '127.0.0.1', 7000, null],
      ['b1', '127.0.0.1', 7001, null],
      ['c1', '10.0.0.9', 7002, null],
      ['a2', '127.0.0.1', 7003, 'a1'],
      ['b2', '127.0.0.1', 7004, 'b1'],
      ['d1', '127.0.0.1', 7005, null],
      ['e1', '127.0.0.1', 7006, null],
    ]);
    expect(nodes[0]!.slots).toEqual([[0, 5460]]);
    expect(nodes[0]!.importing).toEqual([5461]);
    expect(nodes[1]!.importing).toEqual([]);
    expect(slotRangesText(nodes[2]!.slots)).toBe('10923-16383');
    expect(nodes[4]!.flags.has('fail')).toBe(true);
  });

  it('a shard per usable master (a failed one left out, a new one without slots kept), with its replicas', () => {
    const shards = shardsOf(parseClusterNodes(NODES, '127.0.0.1'));
    expect(shards.map((s) => [s.master.id, s.replicas.map((r) => r.id)])).toEqual([
      ['a1', ['a2']],
      ['b1', ['b2']],
      ['c1', []],
      ['e1', []],
    ]);
  });

  it('finds a shard by its node ids after a failover: the promoted replica carries it', () => {
    const after = parseClusterNodes(
      ['a2 127.0.0.1:7003@17003 master - 0 0 6 connected 0-5460', 'a1 127.0.0.1:7000@17000 slave a2 0 0 6 connected', 'b1 127.0.0.1:7001@17001 master - 0 0 2 connected 5461-16383'].join('\n'),
      '127.0.0.1',
    );
    const shards = shardsOf(after);
    expect(matchShard(shards, new Set(['a1', 'a2']))?.master.id).toBe('a2');
    expect(matchShard(shards, new Set(['a1']))?.master.id).toBe('a2');
    expect(matchShard(shards, new Set(['b1', 'a1']))?.master.id).toBe('b1');
    expect(matchShard(shards, new Set(['zz']))).toBeNull();
  });

  it('--prefer-replica picks a usable replica and keeps it while it stays one; no replica: the master', () => {
    const cluster = new ClusterSource({ host: '127.0.0.1', port: 7000, password: 'pw' });
    const m = (extra: string[]) => ['m1 127.0.0.1:7000@1 master - 0 0 1 connected 0-16383', ...extra].join('\n');
    cluster.use(m(['r5 127.0.0.1:7005@1 slave m1 0 0 1 connected', 'r9 127.0.0.1:7009@1 slave,fail m1 0 0 1 connected']), '127.0.0.1');
    const shard = new ShardSource('m1', ['m1'], cluster, true);
    expect(shard.track()).toBe(true);
    expect(shard.endpointNow()).toEqual({ host: '127.0.0.1', port: 7005, password: 'pw' });
    // A replica added with a smaller id does not move the link.
    cluster.use(m(['r5 127.0.0.1:7005@1 slave m1 0 0 1 connected', 'r1 127.0.0.1:7001@1 slave m1 0 0 1 connected']), '127.0.0.1');
    expect(shard.endpointNow()?.port).toBe(7005);
    expect(shard.track()).toBe(true);
    cluster.use(m(['r5 127.0.0.1:7005@1 slave,fail m1 0 0 1 connected', 'r1 127.0.0.1:7001@1 slave m1 0 0 1 connected']), '127.0.0.1');
    expect(shard.endpointNow()?.port).toBe(7001);
    cluster.use(m([]), '127.0.0.1');
    expect(shard.endpointNow()?.port).toBe(7000);
    expect(new ShardSource('m1', ['m1'], cluster, false).endpointNow()?.port).toBe(7000);
    expect(shard.nodeIds).toEqual(['m1', 'r1', 'r5', 'r9']);
  });
});
