/**
 * Replicant as a library.
 *
 *   import { SyncSession } from 'replicant';
 *   const s = new SyncSession({ source: 'redis://a:6379', target: 'redis://b:6379' });
 *   s.on('phase', (phase) => console.log(phase));
 *   await s.run();           // until s.stop()
 */
export { SyncSession, type SyncOptions, type SyncStatus, type SyncResult, type SyncEvents, type Phase, type WriteMode } from './sync/session.js';
export { ClusterSourceSync, type ClusterSyncOptions, type ClusterSyncStatus, type ShardStatus } from './sync/cluster/coordinator.js';
export type { TlsSettings } from './net/tls.js';
export { RdbDecoder } from './rdb/decoder.js';
export { decodeRdbStream } from './rdb/read.js';
export { assembleKeys, KeyAssembler } from './rdb/assemble.js';
export { buildDumpPayload } from './rdb/dump.js';
export type * from './rdb/types.js';
export { Translator } from './translate/translator.js';
export type { TranslateOptions } from './translate/options.js';
export { ReplicationStreamParser, type StreamCommand } from './resp/stream-parser.js';
export { encodeCommand, encodeCommands } from './resp/encode.js';
export { ReplicantError, RdbError, ProtocolError, SourceError, TargetError, UsageError, ExitCode } from './errors.js';
export { IncompleteCopyError, type Shortfall } from './sync/incomplete.js';
export type { Checkpoint } from './checkpoint/checkpoint.js';
export { startMetricsServer, type MetricsServer } from './observe/metrics.js';
export * from './verify/index.js';
