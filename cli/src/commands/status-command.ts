/**
 * `fleetgate status [--admin URL] [--json] [--watch]`: a running gateway's state in a terminal, from its admin
 * port: devices online, messages in and records acked per second, the journal's backlog, the data at risk,
 * each upstream, commands, readiness. Exit code 0 when the gateway is ready, 1 when it is not or cannot be
 * reached: usable as a check in a script.
 *
 * Rates come from two samples of GET /v1/stats a second apart (the gateway keeps counters, not rates), as the
 * status page does with its polls. The steps: status/admin-client.ts reads a sample, status/rates.ts makes rates
 * of two, status/status-text.ts lays them out (a pure function, `formatStatus`, for tests).
 */
import { setTimeout as delay } from 'node:timers/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { sample, type Sample } from '../status/admin-client.ts';
import { statusRates } from '../status/rates.ts';
import { formatStatus } from '../status/status-text.ts';

export const DEFAULT_ADMIN = 'http://127.0.0.1:9180';
/** Between the two samples of a one-off status, and between samples with --watch. */
const SAMPLE_GAP_MS = 1000;
const WATCH_INTERVAL_MS = 2000;

export function statusCommand(): Command {
  return new Command('status')
    .description(
      "a running gateway's state from its admin port: devices, rates, backlog, data at risk, upstreams, readiness (exit 0 when ready, 1 when not or unreachable)",
    )
    .addOption(
      new Option('--admin <url>', "the gateway's admin address (its --admin), as http://HOST:PORT or HOST:PORT")
        .env('FLEETGATE_ADMIN')
        .default(DEFAULT_ADMIN)
        .argParser(parseAdminUrl),
    )
    .option('--json', 'print the stats, rates and readiness as JSON (one object per sample with --watch)')
    .option('--watch', `refresh every ${WATCH_INTERVAL_MS / 1000} s until Ctrl-C`)
    .action(async (flags: { admin: string; json?: boolean; watch?: boolean }) => {
      // The default is not passed through the parser.
      const admin = parseAdminUrl(flags.admin);
      const color = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR && !flags.json;
      process.exitCode = flags.watch
        ? await watch(admin, flags.json === true, color)
        : await once(admin, flags.json === true, color);
    });
}

/** "http://h:p", "h:p" -> "http://h:p" (no trailing slash). */
export function parseAdminUrl(value: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new InvalidArgumentError(`"${value}" is not an address like http://127.0.0.1:9180 or 127.0.0.1:9180`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new InvalidArgumentError(`"${value}": only http:// and https:// are served`);
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`;
}

async function once(admin: string, json: boolean, color: boolean): Promise<number> {
  try {
    const first = await sample(admin);
    await delay(SAMPLE_GAP_MS);
    const second = await sample(admin);
    print(admin, second, first, json, color);
    return second.readiness.ready ? 0 : 1;
  } catch (err: unknown) {
    process.stderr.write(`fleetgate status: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

/** Until Ctrl-C (which ends the process as usual); an unreachable gateway is shown and tried again. */
async function watch(admin: string, json: boolean, color: boolean): Promise<never> {
  let previous: Sample | undefined;
  for (;;) {
    try {
      const current = await sample(admin);
      if (color) process.stdout.write('\x1b[H\x1b[2J');
      print(admin, current, previous, json, color);
      previous = current;
    } catch (err: unknown) {
      const message = err instanceof Error ? err.message : String(err);
      if (json) process.stdout.write(`${JSON.stringify({ admin, error: message })}\n`);
      else process.stdout.write(`${new Date().toLocaleTimeString()} ${message}\n`);
      previous = undefined;
    }
    // The first rates come a second after the first sample, then every WATCH_INTERVAL_MS.
    await delay(previous ? WATCH_INTERVAL_MS : SAMPLE_GAP_MS);
  }
}

function print(admin: string, current: Sample, previous: Sample | undefined, json: boolean, color: boolean): void {
  const before = previous ? { stats: previous.stats, secondsAgo: (current.atMs - previous.atMs) / 1000 } : undefined;
  if (json) {
    const rates = statusRates(current.stats, before);
    process.stdout.write(`${JSON.stringify({ admin, stats: current.stats, rates, readiness: current.readiness })}\n`);
    return;
  }
  process.stdout.write(formatStatus(current.stats, before, current.readiness, { color }));
}
