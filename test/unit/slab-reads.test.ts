import { once } from 'node:events';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SlabCopier, connectCopyingReads } from '../../src/net/slab-reads.js';

describe('SlabCopier', () => {
  it('hands out copies that keep their bytes while the read buffer is reused', () => {
    const copier = new SlabCopier();
    const read = Buffer.alloc(64 * 1024);
    const kept: Buffer[] = [];
    const expected: Buffer[] = [];
    // Enough reads of varied sizes to fill several slabs.
    for (let i = 0; i < 100; i++) {
      const n = 1 + ((i * 7919) % read.length);
      randomBytes(n).copy(read);
      expected.push(Buffer.from(read.subarray(0, n)));
      kept.push(copier.copy(read, n));
      read.fill(0xee);
    }
    expect(kept.map((b) => b.length)).toEqual(expected.map((b) => b.length));
    for (let i = 0; i < kept.length; i++) expect(kept[i]!.equals(expected[i]!), `chunk ${i}`).toBe(true);
    // Chunks are views of a few shared slabs, not one allocation each.
    expect(new Set(kept.map((b) => b.buffer)).size).toBeLessThan(kept.length / 4);
  });

  it('copies a read larger than a slab whole', () => {
    const copier = new SlabCopier();
    const big = randomBytes(3 * 1024 * 1024);
    const out = copier.copy(big, big.length);
    expect(out.equals(big)).toBe(true);
  });
});

describe('connectCopyingReads', () => {
  it('delivers every byte of a plain TCP stream in order, as chunks that stay valid', async () => {
    const payload = randomBytes(5 * 1024 * 1024 + 17);
    const server = createServer((s: Socket) => s.end(payload));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    try {
      const chunks: Buffer[] = [];
      const socket = connectCopyingReads({ host: '127.0.0.1', port }, () => {}, (c) => chunks.push(c));
      await once(socket, 'close');
      expect(Buffer.concat(chunks).equals(payload)).toBe(true);
    } finally {
      server.close();
    }
  });
});
