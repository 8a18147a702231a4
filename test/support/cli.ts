/** Runs the built CLI (dist/main.js) as a user would, capturing its output. */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';

export const MAIN = path.resolve(import.meta.dirname, '../../dist/main.js');
/**
 * The node flags of dist/main.js's #! line (`#!/usr/bin/env -S node <flags>`): the tests start the
 * CLI with the node running them (the project's Node 24) and the same runtime flags as the image.
 */
export const NODE_FLAGS = readFileSync(MAIN, 'utf8').split('\n')[0]?.split(/\s+/).slice(3) ?? [];

export interface Spawned {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or the signal name). */
  readonly exited: Promise<number | string>;
}

export function spawnCli(args: string[], env: Record<string, string> = {}): Spawned {
  // Only what the test gives: no VAULT_* leaks in from the developer's shell.
  const child = spawn(process.execPath, [...NODE_FLAGS, MAIN, ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (c: Buffer) => {
    out += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    err += c.toString();
  });
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** `what` may be a function, to describe the state at the time of failure (e.g. stderr so far). */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string | (() => string),
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await predicate()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'function' ? what() : what}`);
}

/**
 * The port a CLI bound, read from its JSON log line with message `msg` ("admin server ready",
 * "inbound listener ready"). Configs use port 0, so parallel tests cannot race for a port.
 */
export async function loggedPort(run: Spawned, msg: string, timeoutMs = 15_000): Promise<number> {
  let port = 0;
  await waitFor(
    () => {
      const line = run
        .stdout()
        .split('\n')
        .find((l) => l.includes(`"msg":"${msg}"`));
      port = line ? Number((JSON.parse(line) as { address: string }).address.split(':').pop()) : 0;
      return port > 0;
    },
    timeoutMs,
    () => `"${msg}" in the logs (stdout: ${run.stdout().slice(-2000)} stderr: ${run.stderr()})`,
  );
  return port;
}
