/** Target writers: standalone (`TargetWriter`) and cluster (`ClusterTargetWriter`). */
export { TargetWriter } from './standalone.js';
export { TargetAuthError, TargetCommandError, TargetExecAbortError, TargetError, type CommandErrorDetails } from './errors.js';
export { TargetUnavailableError, targetState, type TargetState } from './target-state.js';
export type { TargetEndpoint, TargetInfo, WriteUnit, StreamedUnit, TargetWriterOptions, ErrorPolicy, WriterStats, TargetWriterEvents, UnitWriter, NodeCall, WriterHooks } from './types.js';
export { rdbVersionFor } from './probe.js';
export { ClusterTargetWriter, type ClusterWriterOptions } from './cluster/writer.js';
export { keySlot, crc16 } from '../commands/slot.js';
