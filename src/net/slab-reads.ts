/**
 * Reads of a long-lived, high-volume socket (the replication link) copied into 1 MiB slabs.
 *
 * Node allocates a fresh 64 KiB buffer for every socket read and shrinks it to the bytes read,
 * so a stream of hundreds of megabytes leaves the C heap with chunks of every size, some kept
 * for a while (the spool's memory tier, writes queued for its disk) among many let go: the heap
 * fragments and the process's RSS grows well past what it holds (a 256 MB SET of the stream
 * peaked at 110-150 MB). Reading into one reused buffer and copying into slabs of one size keeps
 * every allocation alike, so a freed slab is reused whole. The copy costs little next to parsing.
 *
 * Plain TCP only: Node's `onread` option is not offered on TLS sockets, which keep 'data'.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connectSocket, type NetEndpoint } from './tls.js';

/** One slab; every chunk handed out is a view into one. */
const SLAB_BYTES = 1024 * 1024;
/** The reused buffer the kernel's bytes land in (Node's own read size). */
const READ_BYTES = 64 * 1024;

/** Hands out copies of read bytes as views of shared slabs (a slab is freed with its last view). */
export class SlabCopier {
  private slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
  private used = 0;

  copy(src: Buffer, n: number): Buffer {
    if (n > SLAB_BYTES - this.used) {
      this.slab = Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, n));
      this.used = 0;
    }
    const start = this.used;
    src.copy(this.slab, start, 0, n);
    this.used += n;
    return this.slab.subarray(start, start + n);
  }
}

/**
 * A socket to `ep` whose incoming bytes go to `onData` as chunks the receiver may keep (copied
 * into slabs on plain TCP, Node's own buffers on TLS). `onReady` as for connectSocket().
 */
export function connectCopyingReads(ep: NetEndpoint, onReady: () => void, onData: (chunk: Buffer) => void): Socket {
  if (ep.tls !== undefined) {
    const socket = connectSocket(ep, onReady);
    socket.on('data', onData);
    return socket;
  }
  const slabs = new SlabCopier();
  return netConnect(
    {
      host: ep.host,
      port: ep.port,
      onread: {
        buffer: Buffer.allocUnsafeSlow(READ_BYTES),
        callback: (n: number, buf: Uint8Array) => {
          onData(slabs.copy(buf as Buffer, n));
          return true;
        },
      },
    },
    onReady,
  );
}
