/**
 * Module type ids (redis-internals §2.13): nine 6-bit characters (first one most significant)
 * followed by a 10-bit encoding version.
 */
const CHARSET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

export interface ModuleTypeId {
  /** The 9-character module type name, e.g. "ReJSON-RL". */
  name: string;
  /** Encoding version, 0..1023. */
  encVersion: number;
}

export function decodeModuleId(id: bigint): ModuleTypeId {
  let name = '';
  for (let i = 0; i < 9; i++) {
    const shift = BigInt(58 - 6 * i);
    name += CHARSET[Number((id >> shift) & 63n)]!;
  }
  return { name, encVersion: Number(id & 1023n) };
}

/** The inverse: build the 64-bit id of a 9-character name and an encoding version. */
export function encodeModuleId(name: string, encVersion: number): bigint {
  if (name.length !== 9) throw new RangeError(`module type name must be 9 characters, got ${JSON.stringify(name)}`);
  let id = 0n;
  for (let i = 0; i < 9; i++) {
    const c = CHARSET.indexOf(name[i]!);
    if (c < 0) throw new RangeError(`module type name ${JSON.stringify(name)} has a character outside A-Z a-z 0-9 - _`);
    id = (id << 6n) | BigInt(c);
  }
  return (id << 10n) | BigInt(encVersion & 1023);
}
