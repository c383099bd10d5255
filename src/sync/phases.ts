/**
 * The states of a sync and the public phases they show as. The driver (session.ts) runs one
 * step per state; each step returns its successor. The public `phase` values (status, metrics,
 * events, logs) are declared here once and derived from the state.
 *
 *   starting ─► connecting ─► full-sync ─► streaming ◄─► bridging (target lost, source kept)
 *                   ▲  │ (+CONTINUE) ─────────────▲  │
 *                   │  ▼                             ▼ link down, target lost or refused
 *                   └──────────────── reconnecting ◄─┘
 *   any state ─► stopping (stop, lease lost, fatal error) ─► stopped
 */
import type { Checkpoint } from '../checkpoint/checkpoint.js';
import type { FullOutcome, SourceConnection } from './steps/source-connection.js';

/** Public phases, in the order a sync normally goes through them. */
export const PHASES = ['connecting', 'full-sync', 'streaming', 'reconnecting', 'stopping', 'stopped'] as const;
export type Phase = (typeof PHASES)[number];

/** Why a sync stops: the one stop reason (no flags). */
export type Halt =
  | { why: 'stop' }
  | { why: 'done'; what?: string }
  | { why: 'lease-lost'; error: Error }
  | { why: 'failed'; error: unknown };

export type State =
  | { at: 'starting' }
  | { at: 'connecting'; resume: Checkpoint | null }
  | { at: 'full-sync'; source: SourceConnection; outcome: FullOutcome }
  | { at: 'streaming'; source: SourceConnection; first: Buffer | null }
  | { at: 'reconnecting'; side: 'source' | 'target'; cause: string; error?: unknown }
  | { at: 'stopping'; halt: Halt }
  | { at: 'stopped'; halt: Halt };

/**
 * `bridging` is entered from `streaming` when the target connection drops (the source link stays
 * up) and returns to it: it runs inside the streaming step, where the unapplied units are.
 */
export type StateName = State['at'] | 'bridging';

/** The phase each state shows as. `starting` shows as `connecting` (what the status said before anything happened). */
export const PHASE_OF: Record<StateName, Phase> = {
  starting: 'connecting',
  connecting: 'connecting',
  'full-sync': 'full-sync',
  streaming: 'streaming',
  bridging: 'reconnecting',
  reconnecting: 'reconnecting',
  stopping: 'stopping',
  stopped: 'stopped',
};
