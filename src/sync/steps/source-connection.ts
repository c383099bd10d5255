/**
 * One replication connection to the source, as the steps see it: the link and the spool it
 * fills at wire speed, read back as RDB chunks and then stream chunks, with the arithmetic
 * that turns link bytes into the received replication offset. Closing it ends the link, the
 * spool, and the snapshot turn of a cluster shard.
 */
import type { ReplicationLink, PsyncOutcome } from '../../replication/link.js';
import type { Spool } from '../../spool/spool.js';
import type { SourceEndpoint } from '../../replication/url.js';

export type FullOutcome = Extract<PsyncOutcome, { mode: 'full' }>;

export class SourceConnection {
  /** Why the link failed (null: closed by the source, or by us). */
  linkError: Error | null = null;
  /** Replication offset of the first stream byte, and the link bytes that came before it (the RDB). */
  private streamBase = 0;
  private bytesBefore = 0;
  private streaming = false;
  private releaseTurn: (() => void) | null = null;

  constructor(
    readonly link: ReplicationLink,
    readonly spool: Spool,
    /** The node the link is connected to. */
    readonly endpoint: SourceEndpoint,
  ) {
    link.on('error', (e: Error) => {
      this.linkError = e;
      spool.end();
    });
    link.on('close', () => spool.end());
  }

  /** The next chunk from the spool (null: the link ended and everything was read). */
  read(): Promise<Buffer | null> {
    return this.spool.read();
  }

  /** The stream begins at `offset`, after `rdbBytes` link bytes of snapshot. */
  startStream(offset: number, rdbBytes: number): void {
    this.streamBase = offset;
    this.bytesBefore = rdbBytes;
    this.streaming = true;
  }

  /** Offset of the last stream byte received (null before the stream begins). */
  receivedOffset(): number | null {
    if (!this.streaming) return null;
    return this.streamBase + Math.max(0, this.link.bytesReceived - this.bytesBefore);
  }

  /** The replication offset of the link's `bytes`-th byte (null before the stream begins, or inside the snapshot). */
  offsetOfLinkBytes(bytes: number): number | null {
    if (!this.streaming || bytes <= this.bytesBefore) return null;
    return this.streamBase + (bytes - this.bytesBefore);
  }

  /** A cluster shard's snapshot turn, released once the snapshot is applied or the connection ends. */
  holdTurn(release: () => void): void {
    this.releaseTurn = release;
  }

  get holdsTurn(): boolean {
    return this.releaseTurn !== null;
  }

  endTurn(): void {
    const r = this.releaseTurn;
    this.releaseTurn = null;
    r?.();
  }

  /** Stops reading the source (what was spooled can still be read). */
  interrupt(): void {
    this.link.close();
    this.spool.end();
  }

  async close(): Promise<void> {
    this.endTurn();
    this.link.close();
    this.spool.end();
    await this.spool.close();
  }
}
