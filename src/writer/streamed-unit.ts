/**
 * A unit of the standalone writer whose command is written as its bytes arrive (see StreamedUnit in
 * types.ts). Its pieces go straight to the socket: they count against the socket's own buffer
 * (STREAM_HIGH_WATER), not the in-flight budget, since no reply can come before the whole command
 * is written. The pending unit is queued when it opens (MULTI's reply may come first) and gets its
 * payload, counts and offset at its end.
 */
import type { Socket } from 'node:net';
import type { TargetError } from './errors.js';
import type { StreamedUnit } from './types.js';
import type { PendingUnit } from './unit-queue.js';

/** Bytes queued in the socket before a streamed command waits for it to drain. */
const STREAM_HIGH_WATER = 4 * 1024 * 1024;

export interface StreamedUnitHost {
  readonly socket: Socket;
  /** Writes (gathered) and counts the bytes; returns their length. */
  write(buf: Buffer): number;
  /** Writes what is gathered now. */
  flush(): void;
  /** Throws the writer's failure, or that it is not open. */
  assertOpen(): void;
  failure(): TargetError | undefined;
  /** The unit `u` is written: `bytes` of it await replies (false: over the in-flight budget). */
  completed(u: PendingUnit, bytes: number): boolean;
  /** Writes EXEC for an atomic unit; returns the bytes written. */
  endBytes(atomic: boolean): number;
}

export class WriterStreamedUnit implements StreamedUnit {
  private bytes: number;

  constructor(
    private readonly host: StreamedUnitHost,
    private readonly unit: PendingUnit,
    private readonly atomic: boolean,
    headBytes: number,
  ) {
    this.bytes = headBytes;
  }

  write(piece: Buffer): boolean {
    this.host.assertOpen();
    this.host.write(piece);
    return this.host.socket.writableLength < STREAM_HIGH_WATER;
  }

  drained(): Promise<void> {
    const failed = this.host.failure();
    if (failed !== undefined) return Promise.reject(failed);
    this.host.flush();
    const s = this.host.socket;
    if (s.writableLength < STREAM_HIGH_WATER) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = () => {
        s.off('drain', done);
        s.off('close', done);
        const f = this.host.failure();
        if (f !== undefined) reject(f);
        else resolve();
      };
      s.on('drain', done);
      s.on('close', done);
    });
  }

  end(e: { payload: Buffer[]; count: number; offset: number; onExecReply?: (replies: unknown[]) => void }): boolean {
    this.host.assertOpen();
    let bytes = this.bytes;
    for (let i = 1; i < e.payload.length; i++) bytes += this.host.write(e.payload[i]!);
    bytes += this.host.endBytes(this.atomic);
    const u = this.unit;
    const count = e.count;
    u.payload = e.payload;
    u.count = count;
    u.offset = e.offset;
    u.onExecReply = this.atomic ? e.onExecReply : undefined;
    u.bytes = bytes;
    // Set last: until now no reply could complete the unit (a plain one's may all be in already).
    u.expected = this.atomic ? count + 2 : count;
    return this.host.completed(u, bytes);
  }
}
