/**
 * Corruption found inside one length-delimited blob (LZF data, ziplist, listpack, intset,
 * zipmap). The blob's bytes have all been read, so the decoder can either turn this into an
 * RdbError or, under `onCorruptValue: 'skip'`, drop the key and carry on after the blob.
 */
export class BlobError {
  /** `offset` is the absolute RDB offset of the bad byte (or of the blob when unknown). */
  constructor(
    readonly message: string,
    readonly offset: number,
  ) {}
}
