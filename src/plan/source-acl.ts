/**
 * The permissions the source's user needs, asked with ACL DRYRUN (Redis 7+): the replication
 * handshake (required), and what the checks and the other commands use (optional).
 */
import type { Verdict } from './buffers.js';
import type { PlanCheck } from './plan.js';
import { ServerReply, type VerifySide } from '../verify/side.js';

const NEEDS: { args: string[]; required: boolean; why: string }[] = [
  { args: ['PSYNC', '?', '-1'], required: true, why: 'the replication handshake' },
  { args: ['REPLCONF', 'capa', 'eof'], required: true, why: 'the replication handshake' },
  { args: ['PING'], required: true, why: 'the replication handshake' },
  { args: ['INFO'], required: false, why: 'the identity and loop checks before PSYNC, and plan' },
  { args: ['CONFIG', 'GET', 'repl-backlog-size'], required: false, why: 'plan reads the buffer settings' },
  { args: ['CLIENT', 'PAUSE', '1', 'WRITE'], required: false, why: 'cutover pauses writes' },
  { args: ['SCAN', '0'], required: false, why: 'verify lists keys' },
  { args: ['DUMP', 'k'], required: false, why: 'verify compares values' },
];

export async function checkSourceAcl(side: VerifySide, username: string | undefined): Promise<PlanCheck> {
  const who = await side.tryCall(0, ['ACL', 'WHOAMI']);
  if (who instanceof ServerReply) {
    return { name: 'source permissions', verdict: 'warn', detail: `cannot ask the source (ACL WHOAMI: ${who.message}); the sync needs +psync +replconf +ping for user ${username ?? 'default'}`, fix: [] };
  }
  const user = String(who);
  const replies = await side.pipeline(0, NEEDS.map((n) => ['ACL', 'DRYRUN', user, ...n.args]));
  if (replies.every((r) => r instanceof ServerReply && /unknown subcommand|NOPERM.*'acl/i.test(r.message))) {
    return { name: 'source permissions', verdict: 'warn', detail: `ACL DRYRUN is not available to user ${user}: cannot check; the sync needs +psync +replconf +ping`, fix: [] };
  }
  const missing = NEEDS.filter((_, i) => String(replies[i] instanceof ServerReply ? (replies[i] as ServerReply).message : replies[i]) !== 'OK');
  const required = missing.filter((n) => n.required);
  const verdict: Verdict = required.length > 0 ? 'fail' : missing.length > 0 ? 'warn' : 'ok';
  const detail =
    missing.length === 0
      ? `user ${user} may replicate, and run INFO, CONFIG GET, CLIENT PAUSE, SCAN and DUMP`
      : missing.map((n) => `${n.args[0]}${n.args[0] === 'CONFIG' || n.args[0] === 'CLIENT' ? ` ${n.args[1]}` : ''} denied (${n.why})`).join('; ');
  const grants = [...new Set(missing.map((n) => `+${n.args[0]!.toLowerCase()}${n.args[0] === 'CONFIG' || n.args[0] === 'CLIENT' ? `|${n.args[1]!.toLowerCase()}` : ''}`))];
  return { name: 'source permissions', verdict, detail, fix: grants.length > 0 ? [`ACL SETUSER ${user} ${grants.join(' ')}   # on the source`] : [] };
}
