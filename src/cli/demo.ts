/**
 * `replicant demo`: the main job on a local example, for a first try on a fresh machine.
 * Starts two throw-away `redis-server` processes on free loopback ports, fills the source,
 * runs `sync` while a writer keeps changing the source, then verifies the target and cleans up.
 * The run is in ./demo-run.ts, loaded when the command runs.
 */
import { Option, type Command } from 'commander';
import { parseDuration, parseNonNegativeInt } from './options.js';

export interface DemoOptions {
  keys: number;
  duration: number;
  writeMode: 'auto' | 'restore' | 'commands';
  filter?: string;
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('try sync locally: start two temporary redis-servers, copy one to the other under live writes, verify, clean up')
    .option('--keys <n>', 'keys to put in the source before the sync', parseNonNegativeInt, 200_000)
    .option('--duration <duration>', 'how long the live writer runs after the snapshot', parseDuration, 5_000)
    .addOption(new Option('--write-mode <mode>', 'snapshot write mode').choices(['auto', 'restore', 'commands']).default('auto'))
    .option('--filter <glob>', "a partial sync: copy only the keys matching this glob (e.g. 'demo:string:1*' or 'demo:[hlz]*'), verify that part and that nothing else reached the target")
    .action(async (o: DemoOptions) => {
      const { runDemo } = await import('./demo-run.js');
      await runDemo(o);
    });
}
