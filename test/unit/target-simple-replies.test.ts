import fc from 'fast-check';
import RedisParser from 'redis-parser';
import { describe, expect, it } from 'vitest';
import { SimpleReplyScanner } from '../../src/writer/simple-replies.js';

/** One reply of a recorded stream, and whether the consumer would count it without its value. */
interface Reply {
  raw: string;
  simple: boolean;
}

const long = 'x'.repeat(300);
/** A recorded reply stream: what a target answers to plain, queued, failing and control-plane commands. */
const REPLIES: Reply[] = [
  { raw: '+OK\r\n', simple: true },
  { raw: ':1\r\n', simple: true },
  { raw: ':-42\r\n', simple: true },
  { raw: '+QUEUED\r\n', simple: true },
  { raw: '+\r\n', simple: true },
  { raw: '-ERR wrong number of arguments\r\n', simple: false },
  { raw: '$3\r\nabc\r\n', simple: false },
  { raw: '$-1\r\n', simple: false },
  { raw: '$4\r\na\r\nb\r\n', simple: false },
  { raw: '*3\r\n+OK\r\n:7\r\n$2\r\nhi\r\n', simple: false },
  { raw: '*2\r\n*1\r\n-ERR inner\r\n:0\r\n', simple: false },
  { raw: '*-1\r\n', simple: false },
  { raw: `+${long}\r\n`, simple: true },
  { raw: ':1234567890123\r\n', simple: true },
  { raw: '-EXECABORT Transaction discarded\r\n', simple: false },
];

type Event = { i: number; fast: true } | { i: number; value: unknown } | { i: number; error: string };

/** Runs `stream` in `chunks` through the scanner; `accepts(i)` is the consumer's answer for reply i. */
function scan(stream: Buffer, cuts: number[], accepts: (i: number) => boolean): Event[] {
  const events: Event[] = [];
  let i = 0;
  const parser = new RedisParser({
    returnReply: (value: unknown) => events.push({ i: i++, value }),
    returnError: (err: Error) => events.push({ i: i++, error: err.message }),
  });
  const scanner = new SimpleReplyScanner(parser, {
    acceptsSimple: () => accepts(i),
    simpleReply: () => {
      events.push({ i: i++, fast: true });
      return true;
    },
  });
  let from = 0;
  for (const to of [...cuts, stream.length]) {
    scanner.execute(stream.subarray(from, to));
    from = to;
  }
  return events;
}

/** The redis-parser-only reading of the same stream. */
function reference(stream: Buffer): Event[] {
  const events: Event[] = [];
  let i = 0;
  const parser = new RedisParser({
    returnReply: (value: unknown) => events.push({ i: i++, value }),
    returnError: (err: Error) => events.push({ i: i++, error: err.message }),
  });
  parser.execute(stream);
  return events;
}

/** Every reply is delivered once, in order; fast-counted only if simple and accepted, else exactly as the parser reads it. */
function check(replies: Reply[], cuts: number[], accepts: (i: number) => boolean): number {
  const stream = Buffer.from(replies.map((r) => r.raw).join(''), 'latin1');
  const ref = reference(stream);
  expect(ref).toHaveLength(replies.length);
  const got = scan(stream, cuts, accepts);
  expect(got).toHaveLength(replies.length);
  let fast = 0;
  got.forEach((e, i) => {
    expect(e.i).toBe(i);
    if ('fast' in e) {
      expect(replies[i]!.simple && accepts(i)).toBe(true);
      fast++;
    } else {
      expect(e).toEqual(ref[i]);
    }
  });
  return fast;
}

const every = () => true;
const sample: Reply[] = [...REPLIES, ...REPLIES.slice(0, 5), ...REPLIES];

describe('SimpleReplyScanner', () => {
  it('counts a whole chunk of simple replies without the parser', () => {
    const replies = Array.from({ length: 50 }, (_, k) => REPLIES[k % 5]!);
    expect(check(replies, [], every)).toBe(50);
  });

  it('hands the rest of the chunk to the parser at the first non-simple or refused reply', () => {
    expect(check(REPLIES, [], every)).toBe(5);
    expect(check(REPLIES, [], (i) => i !== 2)).toBe(2);
  });

  it('is equivalent to the parser alone when the stream is split at every byte boundary', () => {
    const stream = sample.map((r) => r.raw).join('');
    for (let k = 0; k <= stream.length; k++) {
      check(sample, [k], every);
      check(sample, [k], (i) => i % 3 !== 1);
    }
  });

  it('is equivalent to the parser alone when fed one byte at a time', () => {
    const n = sample.reduce((s, r) => s + r.raw.length, 0);
    const cuts = Array.from({ length: n - 1 }, (_, k) => k + 1);
    // Simple replies between two chunks are carried over, so byte-by-byte still counts them fast.
    expect(check(sample, cuts, every)).toBeGreaterThan(0);
    check(sample, cuts, (i) => i % 2 === 0);
  });

  it('is equivalent to the parser alone for random streams, chunkings and consumer answers', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: REPLIES.length - 1 }), { minLength: 1, maxLength: 40 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 40 }),
        (picks, rawCuts, answers) => {
          const replies = picks.map((k) => REPLIES[k]!);
          const n = replies.reduce((s, r) => s + r.raw.length, 0);
          const cuts = [...new Set(rawCuts.map((c) => c % (n + 1)))].sort((a, b) => a - b);
          check(replies, cuts, (i) => answers[i % answers.length]!);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('stops at once when the consumer says reply handling is over', () => {
    const parser = new RedisParser({ returnReply: () => expect.unreachable(), returnError: () => expect.unreachable() });
    let n = 0;
    const scanner = new SimpleReplyScanner(parser, { acceptsSimple: () => true, simpleReply: () => ++n < 2 });
    scanner.execute(Buffer.from('+OK\r\n+OK\r\n+OK\r\n-ERR x\r\n'));
    expect(n).toBe(2);
  });
});
