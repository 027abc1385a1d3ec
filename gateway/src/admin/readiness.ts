/**
 * Readiness (GET /readyz): can this gateway take data from devices now and keep it?
 *
 * Ready means: the process is not failed nor stopping, the journal is open and takes writes (no full disk, no
 * commits failing, not at its limit with reject-new) and the device listeners are up. The upstreams are
 * reported too, but an upstream that is down makes the gateway degraded, not unready: the journal keeps taking
 * data while the backend is away, and that is what the gateway is for. Taking it out of service because its
 * backend is down would turn a backend outage into data lost at the devices.
 */
import { ConnectivityState, errorMessage } from '@fleetgate/core';
import type { GatewayStats } from '../stats.ts';

export interface Check {
  ok: boolean;
  reason: string;
}

export interface UpstreamCheck extends Check {
  state: ConnectivityState;
}

export interface ReadinessReport {
  ready: boolean;
  /** ready and every upstream streaming; degraded: ready, but some upstream is not; unready. */
  status: 'ready' | 'degraded' | 'unready';
  checks: { process: Check; journal: Check; listeners: Check };
  /** By name. They do not decide `ready` (see above). */
  upstreams: Record<string, UpstreamCheck>;
}

export interface GatewayCondition {
  /** Set once the journal thread failed. */
  failure?: string;
  closing: boolean;
}

export class Readiness {
  /** Commit counters at the previous check, and the verdict then: failing commits show only as counters. */
  private lastCommits = { commits: 0, failedCommits: 0 };
  private commitsFailing = false;

  /** `stats` is the snapshot, or what made it fail. */
  check(condition: GatewayCondition, stats: GatewayStats | { error: unknown }): ReadinessReport {
    const process = processCheck(condition);
    if ('error' in stats) {
      const reason = `no stats from the journal thread: ${errorMessage(stats.error)}`;
      return report({ process, journal: { ok: false, reason }, listeners: { ok: false, reason: 'unknown: no stats' } }, {});
    }
    const journal = this.journalCheck(stats);
    const listeners = listenersCheck(stats, condition);
    const upstreams = Object.fromEntries(stats.upstreams.map((u) => [u.name, upstreamCheck(u)]));
    return report({ process, journal, listeners }, upstreams);
  }

  private journalCheck(stats: GatewayStats): Check {
    const { commits, failedCommits, diskFull, lastCommitMs } = stats.journal;
    // Commits are failing when some failed since the last check and none succeeded; with no commit at all in
    // between (an idle journal), the last verdict stands.
    if (commits > this.lastCommits.commits) this.commitsFailing = false;
    else if (failedCommits > this.lastCommits.failedCommits) this.commitsFailing = true;
    this.lastCommits = { commits, failedCommits };

    if (diskFull)
      return { ok: false, reason: 'the disk (or --journal-max-file-bytes) refuses journal writes: appends are refused' };
    if (this.commitsFailing) return { ok: false, reason: `journal commits are failing (${failedCommits} failed since start)` };
    const { limitBytes, whenFull, unackedBytes } = stats.dataAtRisk;
    if (whenFull === 'reject-new' && limitBytes !== null && unackedBytes >= limitBytes) {
      return { ok: false, reason: `the journal is at its limit (${limitBytes} bytes) and refuses new data (reject-new)` };
    }
    return { ok: true, reason: `open, ${stats.journal.rows} rows, last commit ${lastCommitMs} ms` };
  }
}

function processCheck({ failure, closing }: GatewayCondition): Check {
  if (failure) return { ok: false, reason: `the journal thread failed: ${failure}` };
  if (closing) return { ok: false, reason: 'shutting down' };
  return { ok: true, reason: 'running' };
}

/** The listeners are bound at start (the gateway does not start without them) and closed only by a stop. */
function listenersCheck(stats: GatewayStats, { closing }: GatewayCondition): Check {
  const { mqtt, mqtts } = stats.ingress.listeners;
  const listening = [
    mqtt && `mqtt ${mqtt}`,
    mqtts && `mqtts ${mqtts}`,
    stats.deviceLink && `grpc ${stats.deviceLink.listen}`,
  ].filter(Boolean);
  if (closing) return { ok: false, reason: 'closing' };
  if (listening.length === 0) return { ok: false, reason: 'no device listener' };
  return { ok: true, reason: listening.join(', ') };
}

function upstreamCheck(u: GatewayStats['upstreams'][number]): UpstreamCheck {
  if (u.state === ConnectivityState.READY) return { ok: true, state: u.state, reason: `streaming to ${u.connectedTo}` };
  const pending = `${u.pendingRows} rows wait in the journal`;
  return { ok: false, state: u.state, reason: u.lastError ? `${u.lastError}; ${pending}` : pending };
}

function report(checks: ReadinessReport['checks'], upstreams: Record<string, UpstreamCheck>): ReadinessReport {
  const ready = checks.process.ok && checks.journal.ok && checks.listeners.ok;
  const degraded = Object.values(upstreams).some((u) => !u.ok);
  return { ready, status: !ready ? 'unready' : degraded ? 'degraded' : 'ready', checks, upstreams };
}
