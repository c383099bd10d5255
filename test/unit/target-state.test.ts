import { describe, expect, it } from 'vitest';
import { targetState } from '../../src/writer/target-state.js';

describe('targetState', () => {
  it('names the states that refuse every write, transient or not', () => {
    expect(targetState('LOADING Redis is loading the dataset in memory')).toMatchObject({ code: 'LOADING', transient: true });
    expect(targetState('-BUSY Redis is busy running a script.')).toMatchObject({ code: 'BUSY', transient: true });
    expect(targetState('TRYAGAIN Multiple keys request during rehashing of slot')).toMatchObject({ transient: true });
    expect(targetState('CLUSTERDOWN The cluster is down')).toMatchObject({ transient: true });
    expect(targetState('NOREPLICAS Not enough good replicas to write.')).toMatchObject({ transient: true });
    expect(targetState("READONLY You can't write against a read only replica.")).toMatchObject({ code: 'READONLY', transient: false });
    expect(targetState("OOM command not allowed when used memory > 'maxmemory'.")).toMatchObject({ code: 'OOM', transient: false });
    expect(targetState('MISCONF Redis is configured to save RDB snapshots')).toMatchObject({ transient: false });
  });

  it('leaves the errors about a command or a key to --on-error', () => {
    for (const reply of ['BUSYKEY Target key name already exists.', 'WRONGTYPE Operation against a key holding the wrong kind of value', 'ERR unknown command', 'NOPERM this user has no permissions', 'NOSCRIPT No matching script', 'EXECABORT Transaction discarded']) {
      expect(targetState(reply), reply).toBeNull();
    }
  });
});
