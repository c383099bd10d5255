/**
 * Which master(s) of a cluster target a command goes to: the owner of its key's slot, every
 * master (FLUSHALL, SCRIPT/FUNCTION changes), or any one master (keyless commands). Multi-key
 * DEL/UNLINK/MSET whose keys span slots are split into one command per slot, which replays them
 * with the same effect; other cross-slot commands go to the first key's slot and the target
 * answers CROSSSLOT, which the error policy handles.
 */
import { argBuffer, commandKeys, commandName, slotKeyIndex } from '../../commands/keys.js';
import type { Arg } from '../../resp/encode.js';
import { keySlot } from '../../commands/slot.js';

/** Route: a slot in [0, 16384), or one of these. */
export const ROUTE_ANY = -1;
export const ROUTE_ALL = -2;

const BROADCAST = new Set(['FLUSHALL', 'FLUSHDB', 'SCRIPT', 'FUNCTION']);

export function routeOf(args: readonly Arg[]): number {
  const name = commandName(args);
  if (BROADCAST.has(name)) return ROUTE_ALL;
  const k = slotKeyIndex(name, args);
  return k < 0 ? ROUTE_ANY : keySlot(argBuffer(args[k]!));
}

/**
 * For a command whose keys are independent and all written (DEL, UNLINK, MSET) with keys in
 * several slots: one command per slot (keys kept in order); else undefined.
 */
export function splitCrossSlot(args: readonly Arg[]): { slot: number; args: Arg[] }[] | undefined {
  const keys = commandKeys(commandName(args));
  const r = keys.runs[0];
  // Read-only independent keys (EXISTS, TOUCH) never reach a writer: left to CROSSSLOT like others.
  if (!keys.independent || r === undefined || !r.write || r.at !== 1) return undefined;
  const step = r.step;
  if (args.length <= 1 + step || (args.length - 1) % step !== 0) return undefined;
  const bySlot = new Map<number, Arg[]>();
  for (let i = 1; i < args.length; i += step) {
    const slot = keySlot(argBuffer(args[i]!));
    let cmd = bySlot.get(slot);
    if (cmd === undefined) bySlot.set(slot, (cmd = [args[0]!]));
    for (let j = 0; j < step; j++) cmd.push(args[i + j]!);
  }
  if (bySlot.size === 1) return undefined;
  return [...bySlot].map(([slot, a]) => ({ slot, args: a }));
}
