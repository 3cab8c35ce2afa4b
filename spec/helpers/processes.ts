/**
 * Finds processes by the run marker (GATE_BENCH_RUN, see lib/parentWatch.ts) in /proc, so a test
 * can prove that nothing it started outlived its parent.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { RUN_MARKER_ENV } from '../../lib/parentWatch.js';
import { waitFor } from './wait.js';

export interface Proc {
  pid: number;
  cmdline: string;
}

/** Live processes (zombies excluded) whose environment holds GATE_BENCH_RUN=`marker`. */
export function markedProcesses(marker: string): Proc[] {
  const want = `${RUN_MARKER_ENV}=${marker}`;
  const out: Proc[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
      if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') continue;
      if (!readFileSync(`/proc/${name}/environ`, 'latin1').split('\0').includes(want)) continue;
      out.push({ pid: Number(name), cmdline: readFileSync(`/proc/${name}/cmdline`, 'latin1').split('\0').join(' ').trim() });
    } catch {
      /* gone meanwhile, or not ours to read */
    }
  }
  return out;
}

/** Waits until no process carries the marker; the failure lists those still running. */
export async function waitForNoneMarked(marker: string, timeoutMs: number): Promise<void> {
  try {
    await waitFor(`no process with ${RUN_MARKER_ENV}=${marker}`, () => markedProcesses(marker).length === 0, timeoutMs);
  } catch (e) {
    const left = markedProcesses(marker);
    for (const p of left) {
      try {
        process.kill(p.pid, 'SIGKILL'); // leave the machine clean for the next test
      } catch {
        /* already gone */
      }
    }
    throw new Error(`${(e as Error).message}; still running: ${left.map((p) => `${p.pid} ${p.cmdline}`).join(' | ')}`, { cause: e });
  }
}

/** How many TCP sockets process `pid` has listening (from /proc/<pid>/fd and /proc/net/tcp{,6}). */
export function listeningSockets(pid: number): number {
  const inodes = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) inodes.add(m[1]!);
      } catch {
        /* closed meanwhile */
      }
    }
  } catch {
    return 0; // gone
  }
  let n = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'latin1');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[3] === '0A' && inodes.has(cols[9] ?? '')) n++; // 0A = LISTEN
    }
  }
  return n;
}
