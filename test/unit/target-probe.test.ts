import { describe, expect, it } from 'vitest';
import { buildTargetInfo, rdbVersionFor } from '../../src/writer/probe.js';
import { parseInfo } from '../../src/commands/info.js';

describe('target probe parsing', () => {
  it('maps server versions to the RDB version they load', () => {
    expect(rdbVersionFor(7, 0, false)).toBe(10);
    expect(rdbVersionFor(7, 2, false)).toBe(11);
    expect(rdbVersionFor(7, 4, false)).toBe(12);
    expect(rdbVersionFor(8, 4, false)).toBe(12);
    expect(rdbVersionFor(8, 6, false)).toBe(13);
    expect(rdbVersionFor(8, 8, false)).toBe(14);
    expect(rdbVersionFor(6, 2, false)).toBe(9);
    expect(rdbVersionFor(4, 0, false)).toBe(8);
    expect(rdbVersionFor(7, 2, true)).toBe(11);
    expect(rdbVersionFor(8, 1, true)).toBe(11);
    expect(rdbVersionFor(9, 0, true)).toBe(80);
  });

  it('reads Valkey, keyspace totals, modules and cluster mode from INFO text', () => {
    const server = '# Server\r\nredis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.0.1\r\nredis_mode:standalone\r\n';
    const keyspace = '# Keyspace\r\ndb0:keys=10,expires=2,avg_ttl=0\r\ndb5:keys=7,expires=0,avg_ttl=0\r\n';
    const modules = '# Modules\r\nmodule:name=search,ver=20803,api=1,filters=0,usedby=[],using=[],options=[]\r\nmodule:name=ReJSON,ver=20609,api=1\r\n';
    const info = buildTargetInfo({ server, keyspace, modules, cluster: '# Cluster\r\ncluster_enabled:1\r\n', databases: undefined });
    expect(info).toEqual({ runId: '', replid: '', version: '8.0.1', major: 8, minor: 0, rdbVersion: 11, valkey: true, cluster: true, dbsize: 17, databases: 16, databasesKnown: false, modules: ['search', 'ReJSON'] });
    expect(parseInfo(server).get('redis_mode')).toBe('standalone');
  });

  it('reads a plain Redis INFO', () => {
    const info = buildTargetInfo({ server: 'redis_version:7.4.2\r\n', keyspace: '', modules: '', cluster: 'cluster_enabled:0\r\n', databases: 32 });
    expect(info).toMatchObject({ version: '7.4.2', major: 7, minor: 4, rdbVersion: 12, valkey: false, cluster: false, dbsize: 0, databases: 32, modules: [] });
  });
});
