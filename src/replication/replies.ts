/**
 * Interpretation of the source's handshake replies (redis-internals §1.2, §1.5, §1.6):
 * each function takes one reply line (without CRLF) and returns what it means or
 * throws the error the link should fail with. Pure, so every case is unit-testable.
 */
import { ProtocolError } from '../errors.js';
import { ReplicationSourceError } from './errors.js';
import { EOF_MARK_LENGTH, type RdbFraming } from './rdb-trailer.js';

export const REPLID = /^[0-9a-zA-Z]{40}$/;

/** Errors after which the source may accept us later. */
const TRANSIENT = /^-?(NOMASTERLINK|LOADING|BUSY|TRYAGAIN|MASTERDOWN)\b/;

function quote(line: string): string {
  return JSON.stringify(line.slice(0, 200));
}

/** PING: like real replicas, accept `+…` and the auth errors of a Redis that wants AUTH. */
export function checkPingReply(reply: string, source: string): void {
  if (reply.startsWith('+') || /^-(NOAUTH|NOPERM|ERR operation not permitted)/.test(reply)) return;
  if (reply.startsWith('-')) throw new ReplicationSourceError(`source ${source} answered PING with an error: ${reply.slice(1)}`, TRANSIENT.test(reply));
  throw new ProtocolError(`unexpected reply to PING from ${source}: ${quote(reply)}`);
}

export function checkAuthReply(reply: string, username: string | undefined, source: string): void {
  if (reply.startsWith('+')) return;
  // The reply never contains the password; the user name is safe to show.
  throw new ReplicationSourceError(`authentication to source ${source} as user ${JSON.stringify(username ?? 'default')} failed: ${reply.replace(/^-/, '')}`, false);
}

/** REPLCONF: auth problems are fatal; other errors are ignored, like real replicas do. Returns false when ignored. */
export function checkReplconfReply(reply: string, source: string): boolean {
  if (/^-NOAUTH/.test(reply)) throw new ReplicationSourceError(`source ${source} requires authentication: give a password in the source URL (${reply.slice(1)})`, false);
  if (/^-NOPERM/.test(reply)) throw new ReplicationSourceError(`the source user lacks permission for REPLCONF on ${source}: ${reply.slice(1)}`, false);
  return !reply.startsWith('-');
}

export type PsyncReply = { mode: 'full'; replid: string; offset: number } | { mode: 'continue'; replid: string };

/** The first non-empty line after PSYNC. `resumeReplid` is what we sent (null for `PSYNC ? -1`). */
export function parsePsyncReply(reply: string, resumeReplid: string | null, source: string): PsyncReply {
  if (reply.startsWith('+FULLRESYNC')) {
    const m = /^\+FULLRESYNC ([^ ]+) (\d+)$/.exec(reply);
    if (!m || !REPLID.test(m[1]!)) throw new ProtocolError(`malformed +FULLRESYNC reply from ${source}: ${quote(reply)}`);
    const offset = Number(m[2]);
    if (!Number.isSafeInteger(offset)) throw new ProtocolError(`+FULLRESYNC offset out of range from ${source}: ${m[2]}`);
    return { mode: 'full', replid: m[1]!, offset };
  }
  if (reply.startsWith('+CONTINUE')) {
    if (resumeReplid === null) throw new ProtocolError(`source ${source} answered +CONTINUE to PSYNC ? -1`);
    const m = /^\+CONTINUE(?: ([^ ]+))?$/.exec(reply);
    if (!m || (m[1] !== undefined && !REPLID.test(m[1]))) throw new ProtocolError(`malformed +CONTINUE reply from ${source}: ${quote(reply)}`);
    // Without an id (a source not speaking PSYNC2) the history is the one we asked for.
    return { mode: 'continue', replid: m[1] ?? resumeReplid };
  }
  if (reply.startsWith('-')) {
    const text = reply.slice(1);
    if (TRANSIENT.test(text)) throw new ReplicationSourceError(`source ${source} cannot serve a replica right now (retry later): ${text}`, true);
    if (/^(NOAUTH|NOPERM|WRONGPASS)\b/.test(text)) {
      throw new ReplicationSourceError(`source ${source} refused PSYNC: ${text} (the user needs +psync +replconf +ping)`, false);
    }
    throw new ReplicationSourceError(`source ${source} refused PSYNC: ${text}`, false);
  }
  throw new ProtocolError(`unexpected reply to PSYNC from ${source}: ${quote(reply)}`);
}

/** The line after +FULLRESYNC (and its keepalives): `$<len>` or `$EOF:<40-byte mark>`. */
export function parseFramingHeader(header: string, source: string): RdbFraming {
  if (header.startsWith('$EOF:')) {
    const mark = Buffer.from(header.slice(5), 'latin1');
    if (mark.length !== EOF_MARK_LENGTH) throw new ProtocolError(`diskless RDB header from ${source} with a ${mark.length}-byte mark (expected ${EOF_MARK_LENGTH}): ${quote(header)}`);
    return { kind: 'eof', mark };
  }
  if (header.startsWith('$')) {
    if (!/^\$\d{1,15}$/.test(header)) throw new ProtocolError(`malformed RDB length header from ${source}: ${quote(header)}`);
    return { kind: 'length', length: Number(header.slice(1)) };
  }
  // E.g. the BGSAVE failed on the source.
  if (header.startsWith('-')) throw new ReplicationSourceError(`source ${source} aborted the full sync: ${header.slice(1)}`, true);
  throw new ProtocolError(`expected the RDB header ('$') after +FULLRESYNC from ${source}, got ${quote(header)}`);
}
