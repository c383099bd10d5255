#!/usr/bin/env node
/**
 * The `replicant` command line. Each subcommand lives in its own module and registers
 * itself on the program; errors are turned into one clear line and a documented exit code.
 */
import { Command, CommanderError } from 'commander';
import { ExitCode, ReplicantError } from '../errors.js';
import { registerRdbCommand } from './rdb.js';
import { registerSyncCommand } from './sync.js';
import { registerDemoCommand } from './demo.js';
import { registerVerifyCommand } from './verify.js';
import { registerCutoverCommand } from './cutover.js';
import { registerPlanCommand } from './plan.js';
import { registerBenchCommand } from './bench.js';
import { registerStatusCommand } from './status.js';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('replicant')
    .description('Poses as a Redis replica: decodes RDB snapshots and relays the replication stream to a target.')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();
  registerRdbCommand(program);
  registerSyncCommand(program);
  registerDemoCommand(program);
  registerVerifyCommand(program);
  registerCutoverCommand(program);
  registerPlanCommand(program);
  registerBenchCommand(program);
  registerStatusCommand(program);
  return program;
}

/** Print one line for an error and return the exit code for it. */
export function reportError(err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : ExitCode.USAGE;
  if (err instanceof ReplicantError) {
    process.stderr.write(`replicant: ${err.message}\n`);
    return err.exitCode;
  }
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.code === 'string' && (e.code === 'ENOENT' || e.code === 'EACCES' || e.code === 'EISDIR')) {
    process.stderr.write(`replicant: ${e.message}\n`);
    return ExitCode.IO;
  }
  process.stderr.write(`replicant: internal error: ${e?.stack ?? String(err)}\n`);
  return ExitCode.INTERNAL;
}

async function main(): Promise<void> {
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (err) {
    process.exitCode = reportError(err);
  }
}

await main();
