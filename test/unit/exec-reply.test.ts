import { describe, expect, it } from 'vitest';
import { encodeCommands } from '../../src/resp/encode.js';
import { describeUnitError, readExecReply } from '../../src/writer/exec-reply.js';
import { TargetExecAbortError } from '../../src/writer/errors.js';
import { PendingUnit, UnitKind } from '../../src/writer/unit-queue.js';

const T = '127.0.0.1:7000';

function atomicUnit(commands: string[][], offset = 42): PendingUnit {
  const payload = encodeCommands(commands);
  return new PendingUnit(UnitKind.ATOMIC, payload, commands.length, commands.length + 2, payload.length, offset, 1);
}

describe('readExecReply', () => {
  const unit = () => atomicUnit([['SET', 'a', '1'], ['INCR', 'a'], ['LPUSH', 'a', 'x']]);

  it('applied: names the commands that failed at run time, in order', () => {
    const out = readExecReply(T, unit(), ['OK', 2, new Error('WRONGTYPE Operation against a key holding the wrong kind of value')], undefined);
    expect(out.kind).toBe('applied');
    if (out.kind !== 'applied') return;
    expect(out.errors).toEqual([{ index: 2, reply: 'WRONGTYPE Operation against a key holding the wrong kind of value' }]);
    expect(out.replies).toHaveLength(3);
  });

  it('applied with a command rejected at queue time (servers before 2.6.5): its index is kept, the replies shift', () => {
    const u = unit();
    u.queueErrors = [{ index: 1, reply: 'ERR unknown command' }];
    const out = readExecReply(T, u, ['OK', new Error('ERR boom')], undefined);
    expect(out.kind === 'applied' && out.errors).toEqual([
      { index: 1, reply: 'ERR unknown command' },
      { index: 2, reply: 'ERR boom' },
    ]);
  });

  it('EXECABORT: nothing applied, the rejected commands named with their keys and the offset', () => {
    const u = unit();
    u.queueErrors = [{ index: 1, reply: 'ERR wrong number of arguments' }];
    const out = readExecReply(T, u, undefined, 'EXECABORT Transaction discarded because of previous errors.');
    expect(out.kind).toBe('aborted');
    if (out.kind !== 'aborted') return;
    expect(out.abort).toBeInstanceOf(TargetExecAbortError);
    expect(out.abort.rejected.map((e) => [e.index, e.command, e.key])).toEqual([[1, 'INCR', 'a']]);
    expect(out.abort.rejected[0]!.message).toMatch(/while queuing in MULTI/);
    expect(out.abort.message).toMatch(/completing offset 42/);
  });

  it('a nil EXEC (WATCH-style abort) is an abort; a reply of the wrong length is malformed', () => {
    expect(readExecReply(T, unit(), null, undefined).kind).toBe('aborted');
    const bad = readExecReply(T, unit(), ['OK'], undefined);
    expect(bad.kind).toBe('malformed');
    if (bad.kind === 'malformed') expect(bad.failure.message).toMatch(/EXEC returned 1 replies for an atomic unit of 3 commands/);
  });
});

describe('describeUnitError', () => {
  it('re-reads the command and its key out of the payload', () => {
    const err = describeUnitError(T, atomicUnit([['SET', 'k1', 'v'], ['HSET', 'h:9', 'f', 'v']]), 1, 'ERR oops');
    expect([err.command, err.key, err.index, err.reply, err.offset]).toEqual(['HSET', 'h:9', 1, 'ERR oops', 42]);
  });
});
