/**
 * Who the source is, read from INFO on the replication connection before PSYNC: its run_id
 * (a server process), its replication ids (a history) and its backlog window. The sync uses it
 * to refuse a source that is the target itself, to predict and explain a full resync, and to
 * tell a restart from a failover.
 */
import { parseServerInfo } from './server-info.js';

export interface ServerIdentity {
  runId: string;
  /** master_replid: the current replication history. */
  replid: string;
  /** master_replid2: the previous history (after a failover or a restart that kept the id). */
  replid2: string;
  /** The offsets a PSYNC can resume from: [backlogStart, replOffset + 1]; null without a backlog. */
  backlogStart: number | null;
  replOffset: number;
  role: string;
}

/** From the text of `INFO server` and `INFO replication`; null when run_id is missing. */
export function parseServerIdentity(server: string, replication: string): ServerIdentity | null {
  const info = parseServerInfo(`${server}\r\n${replication}`);
  if (!info.runId) return null;
  const f = info.fields;
  const histlen = Number(f.get('repl_backlog_histlen') ?? 0);
  const first = Number(f.get('repl_backlog_first_byte_offset') ?? NaN);
  return {
    runId: info.runId,
    replid: info.masterReplid,
    replid2: info.masterReplid2,
    backlogStart: f.get('repl_backlog_active') === '1' && histlen > 0 && Number.isFinite(first) ? first : null,
    replOffset: info.masterReplOffset,
    role: info.role,
  };
}

/**
 * Why `PSYNC replid offset+1` will not be answered with +CONTINUE, or null when it should be
 * (the history is known and the offset is inside the backlog).
 */
export function fullResyncReason(id: ServerIdentity, replid: string, offset: number): string | null {
  if (replid !== id.replid && replid !== id.replid2) {
    return `the source has a new replication history (checkpoint replid ${replid}, source ${id.replid}): it was restarted without its replication id, replaced, or is a different server`;
  }
  const want = offset + 1;
  if (want === id.replOffset + 1) return null;
  if (id.backlogStart === null) return `the source has no replication backlog to resume offset ${want} from (it was restarted or its backlog was freed)`;
  if (want < id.backlogStart) {
    return `the source's backlog no longer holds offset ${want} (it starts at ${id.backlogStart}; the outage outlasted repl-backlog-size: raise it)`;
  }
  if (want > id.replOffset + 1) return `the checkpoint (offset ${offset}) is ahead of the source (offset ${id.replOffset}): the source lost writes (restarted from an older snapshot)`;
  return null;
}
