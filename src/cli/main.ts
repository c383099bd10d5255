#!/usr/bin/env node
/**
 * The `replicant` command line. Each subcommand lives in its own module and registers
 * itself on the program; errors are turned into one clear line and a documented exit code.
 */
import { Command, CommanderError } from 'commander';
import { ExitCode, ReplicantError } from '../errors.js';

type Register = (program: Command) => void;

/**
 * Each subcommand's module, in the order `--help` lists them. Only the one named on the command
 * line is loaded (each brings its option parsers and their imports): start-up is part of every
 * `rdb` and `sync` run's time.
 */
const SUBCOMMANDS: Record<string, () => Promise<Register>> = {
  rdb: async () => (await import('./rdb.js')).registerRdbCommand,
  sync: async () => (await import('./sync.js')).registerSyncCommand,
  demo: async () => (await import('./demo.js')).registerDemoCommand,
  verify: async () => (await import('./verify.js')).registerVerifyCommand,
  cutover: async () => (await import('./cutover.js')).registerCutoverCommand,
  plan: async () => (await import('./plan.js')).registerPlanCommand,
  bench: async () => (await import('./bench.js')).registerBenchCommand,
  status: async () => (await import('./status.js')).registerStatusCommand,
};

/** The program for `argv`: with a known subcommand first, that one alone; else all (help, errors). */
export async function buildProgram(argv: readonly string[] = process.argv): Promise<Command> {
  const program = new Command();
  program
    .name('replicant')
    .description('Poses as a Redis replica: decodes RDB snapshots and relays the replication stream to a target.')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();
  const named = argv[2];
  const names = named !== undefined && Object.hasOwn(SUBCOMMANDS, named) ? [named] : Object.keys(SUBCOMMANDS);
  const registers = await Promise.all(names.map((n) => SUBCOMMANDS[n]!()));
  for (const register of registers) register(program);
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
    await (await buildProgram()).parseAsync(process.argv);
  } catch (err) {
    process.exitCode = reportError(err);
  }
}

await main();
