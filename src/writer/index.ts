/** Target writers: standalone (`TargetWriter`) and cluster (`ClusterTargetWriter`). */
export { TargetWriter, type WriterHooks, type TargetWriterEvents } from './standalone.js';
export { TargetCommandError, TargetExecAbortError, TargetError, type CommandErrorDetails } from './errors.js';
export type { TargetEndpoint, TargetInfo, WriteUnit, TargetWriterOptions, ErrorPolicy, WriterStats } from './types.js';
export { rdbVersionFor } from './probe.js';
export { ClusterTargetWriter, type ClusterWriterOptions } from './cluster/writer.js';
export { keySlot, crc16 } from '../commands/slot.js';
import type { TargetWriter } from './standalone.js';
import type { ClusterTargetWriter } from './cluster/writer.js';
/** A standalone or cluster writer: the same unit interface. */
export type AnyTargetWriter = TargetWriter | ClusterTargetWriter;
