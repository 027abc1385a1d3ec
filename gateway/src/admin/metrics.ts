/**
 * Prometheus metrics (GET /metrics), drawn from a GatewayStats snapshot taken at scrape time: one stats() call
 * per scrape feeds every metric, so they all describe the same moment. The registry is this gateway's own (not
 * prom-client's global one), with the process metrics (RSS, CPU, event loop lag, GC) under the same prefix.
 *
 * Names follow https://prometheus.io/docs/practices/naming/: `fleetgate_` prefix, base units (`_bytes`,
 * `_seconds`), `_total` for counters. What stats keep as a total since start is a counter here (a mirrored
 * counter adds what the total grew by since the last scrape); what goes up and down is a gauge. Label values
 * that can be known in advance (refusal reasons, states, outcomes) are all exported, zeros included, so that
 * rate() sees the first increment.
 *
 * Latency, stage by stage (a message's path, docs/design.md): where the time goes is counted where it is spent,
 * into buckets (@fleetgate/core DurationHistogram), and exported as they are: fleetgate_journal_append_seconds
 * (ingress -> durable, main thread), fleetgate_journal_commit_seconds (each transaction, the journal thread),
 * fleetgate_upstream_ack_seconds (batch written -> Ack) and fleetgate_upstream_delivery_seconds (arrival -> Ack),
 * per upstream. Their sum over a window is the p99 a site sees; which one moves says why.
 */
import { collectDefaultMetrics, Gauge, Registry, type LabelValues } from 'prom-client';
import { AUTH_REFUSALS } from '../uplink/is-retryable.ts';
import { ConnectivityState } from '@fleetgate/core';
import { ExportedHistogram, METRICS_PREFIX, MirroredCounter } from './mirrored-metrics.ts';
import { protocolCounts } from '../ingress/ingress-counters.ts';
import type { GatewayStats } from '../stats.ts';

export { METRICS_PREFIX };

/** MQTT connections by transport (tcp, tls, ws, wss) and MQTT version (3.1, 3.1.1, 5). */
const BY_PROTOCOL = ['transport', 'version'] as const;
/** Commands in a final state; "delivered" is a step on the way, counted on its own. */
const COMMAND_OUTCOMES = ['succeeded', 'failed', 'expired', 'rejected'] as const;

export interface MetricsSource {
  stats(): Promise<GatewayStats>;
}

export interface GatewayMetricsOptions {
  /** Process metrics (RSS, CPU, event loop lag, GC); default true. */
  processMetrics?: boolean;
}

export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly m = defineMetrics(this.registry);

  constructor(
    private readonly source: MetricsSource,
    options: GatewayMetricsOptions = {},
  ) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: METRICS_PREFIX });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** One scrape: a fresh stats snapshot, then the whole registry in the Prometheus text format. */
  async render(): Promise<string> {
    this.update(await this.source.stats());
    return this.registry.metrics();
  }

  /** Sets every metric from `stats`. */
  update(stats: GatewayStats): void {
    const m = this.m;
    m.buildInfo.reset();
    m.buildInfo.set({ gateway_id: stats.gatewayId, version: stats.version }, 1);

    const mqtt = stats.ingress;
    m.ingressMessages.set({ protocol: 'mqtt' }, mqtt.messages);
    m.ingressBytes.set({ protocol: 'mqtt' }, mqtt.bytes);
    for (const [reason, n] of Object.entries(mqtt.refusals)) m.ingressRefusals.set({ protocol: 'mqtt', reason }, n);
    for (const [reason, n] of Object.entries(mqtt.disconnects)) m.ingressDisconnects.set({ protocol: 'mqtt', reason }, n);
    m.devicesOnline.set({ protocol: 'mqtt' }, mqtt.devicesConnected);
    m.mqttPublishes.set({ qos: '0' }, mqtt.qos0);
    m.mqttPublishes.set({ qos: '1' }, mqtt.qos1);
    m.mqttPublishes.set({ qos: '2' }, mqtt.qos2);
    m.mqttLocalMessages.set({}, mqtt.localMessages);
    m.mqttClientErrors.set({}, mqtt.clientErrors);
    m.mqttHeld.set({}, mqtt.heldForBackpressure);
    m.mqttRateLimited.set({}, mqtt.rateLimited);
    for (const [labels, count] of protocolCounts(mqtt.protocols)) m.mqttConnections.set(labels, count.connections);
    for (const [labels, count] of protocolCounts(mqtt.protocols)) m.mqttConnected.set(labels, count.connected);
    const grpc = stats.deviceLink;
    if (grpc) {
      m.ingressMessages.set({ protocol: 'grpc' }, grpc.messages);
      m.ingressBytes.set({ protocol: 'grpc' }, grpc.bytes);
      for (const [reason, n] of Object.entries(grpc.refusals)) m.ingressRefusals.set({ protocol: 'grpc', reason }, n);
      for (const [reason, n] of Object.entries(grpc.disconnects)) m.ingressDisconnects.set({ protocol: 'grpc', reason }, n);
      m.devicesOnline.set({ protocol: 'grpc' }, grpc.devicesConnected);
    } else {
      m.devicesOnline.remove({ protocol: 'grpc' });
    }

    const journal = stats.journal;
    m.journalRows.set(journal.rows);
    m.journalPayloadBytes.set(journal.payloadBytes);
    m.journalFileBytes.set(journal.fileBytes);
    setOrClear(m.journalOldestAge, {}, seconds(journal.oldestUnackedAgeMs));
    m.journalCommits.set({}, journal.commits);
    m.journalCommitFailures.set({}, journal.failedCommits);
    m.journalCommittedRows.set({}, journal.committedRows);
    m.journalRejectedAppends.set({}, journal.rejectedAppends);
    m.journalLastCommit.set(journal.lastCommitMs / 1000);
    m.journalCommitSeconds.set(journal.commitDurations);
    m.journalAppendSeconds.set(journal.appendDurations);
    m.journalWaiting.set(journal.waiting);
    m.journalDiskFull.set(journal.diskFull ? 1 : 0);
    for (const [reason, n] of Object.entries(journal.dropped)) m.journalDropped.set({ reason }, n);
    m.journalPendingGaps.set(journal.pendingGaps);
    m.journalDeadLetters.set(journal.deadLetters);
    m.journalAppendedBytes.set({}, journal.appendedBytes);
    m.journalFreedBytes.set({}, journal.freedBytes);
    m.tailCacheBytes.set(journal.cachedBytes);
    m.tailCacheHits.set({}, journal.hits);
    m.tailCacheMisses.set({}, journal.misses);

    const risk = stats.dataAtRisk;
    m.riskBytes.set(risk.unackedBytes);
    m.riskRows.set(risk.unackedRows);
    setOrClear(m.riskOldestAge, {}, seconds(risk.oldestUnackedAgeMs));
    setOrClear(m.secondsUntilFull, {}, risk.secondsUntilFull);
    setOrClear(m.limitBytes, {}, risk.limitBytes);

    // Gauges per upstream start over each scrape, so an upstream no longer in stats leaves no stale series.
    for (const g of [
      m.upstreamUp,
      m.upstreamState,
      m.upstreamInFlight,
      m.upstreamCredit,
      m.upstreamPendingRows,
      m.upstreamPendingBytes,
      m.upstreamOldestAge,
      m.upstreamRefused,
      m.upstreamAckSeconds,
      m.upstreamDeliverySeconds,
    ])
      g.reset();
    for (const u of stats.upstreams) {
      const upstream = { upstream: u.name };
      m.upstreamUp.set(upstream, u.state === ConnectivityState.READY ? 1 : 0);
      for (const state of Object.values(ConnectivityState))
        m.upstreamState.set({ upstream: u.name, state }, u.state === state ? 1 : 0);
      for (const status of AUTH_REFUSALS)
        m.upstreamRefused.set({ upstream: u.name, status }, u.refused?.status === status ? 1 : 0);
      m.upstreamInFlight.set(upstream, u.batchesInFlight);
      m.upstreamCredit.set(upstream, u.credit);
      m.upstreamBatches.set(upstream, u.batchesSent);
      m.upstreamRecords.set(upstream, u.recordsSent);
      m.upstreamResent.set(upstream, u.recordsResent);
      m.upstreamAcks.set(upstream, u.acks);
      m.upstreamGaps.set(upstream, u.gapsSent);
      m.upstreamRejections.set(upstream, u.rejections);
      m.upstreamDeadLettered.set(upstream, u.deadLettered);
      m.upstreamDrainWaits.set(upstream, u.drainWaits);
      m.upstreamSessions.set(upstream, u.sessions);
      m.upstreamFailures.set(upstream, u.failures);
      m.upstreamPendingRows.set(upstream, u.pendingRows);
      m.upstreamPendingBytes.set(upstream, u.pendingBytes);
      setOrClear(m.upstreamOldestAge, upstream, seconds(u.oldestPendingAgeMs));
      m.upstreamAckSeconds.set(u.ackDurations, upstream);
      m.upstreamDeliverySeconds.set(u.deliveryDurations, upstream);
    }

    const commands = stats.commands;
    m.commandsReceived.set({}, commands.received);
    m.commandsDelivered.set({}, commands.delivered);
    for (const outcome of COMMAND_OUTCOMES) m.commandsFinished.set({ outcome }, commands[outcome]);
    m.commandUnknownResults.set({}, commands.unknownResults);
    m.commandsStored.set(commands.stored);
  }
}

/** Every gateway metric, registered in `registry`. */
function defineMetrics(registry: Registry) {
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
    new MirroredCounter<L>(registry, name, help, labelNames);
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
    new Gauge<L>({ name: METRICS_PREFIX + name, help, labelNames, registers: [registry] });
  return {
    buildInfo: gauge('build_info', 'Always 1: the gateway id and version as labels.', ['gateway_id', 'version']),

    // Ingress, by protocol: mqtt (MQTT and MQTT over TLS) and grpc (the device link).
    ingressMessages: counter('ingress_messages_total', 'Telemetry messages from devices handed to the journal.', ['protocol']),
    ingressBytes: counter('ingress_bytes_total', 'Payload bytes of those messages.', ['protocol']),
    ingressRefusals: counter('ingress_refusals_total', 'Connections and messages refused, by reason.', ['protocol', 'reason']),
    ingressDisconnects: counter('ingress_disconnects_total', 'Device connections the gateway ended, by reason.', [
      'protocol',
      'reason',
    ]),
    devicesOnline: gauge('devices_online', 'Devices connected now.', ['protocol']),
    mqttPublishes: counter('mqtt_telemetry_publishes_total', 'Telemetry PUBLISHes journaled, by QoS.', ['qos']),
    mqttLocalMessages: counter(
      'mqtt_local_messages_total',
      'PUBLISHes on other allowed topics (passed on over MQTT, not journaled).',
    ),
    mqttClientErrors: counter(
      'mqtt_client_errors_total',
      'MQTT connections that ended in an error (refusals, protocol errors, resets).',
    ),
    mqttHeld: counter(
      'mqtt_held_for_backpressure_total',
      'PUBLISHes held back while too many PUBACKs were pending on their connection.',
    ),
    mqttRateLimited: counter('mqtt_rate_limited_total', 'PUBLISHes that waited for their device rate limit.'),
    mqttConnections: counter('mqtt_connections_total', 'MQTT connections admitted, by transport and version.', BY_PROTOCOL),
    mqttConnected: gauge('mqtt_connected', 'MQTT connections open now, by transport and MQTT version.', BY_PROTOCOL),

    // The journal.
    journalRows: gauge(
      'journal_rows',
      'Rows in the journal: accepted from devices and not yet acknowledged by every upstream they go to.',
    ),
    journalPayloadBytes: gauge('journal_payload_bytes', 'Payload bytes of the rows in the journal.'),
    journalFileBytes: gauge('journal_file_bytes', 'Size of the journal files on disk.'),
    journalOldestAge: gauge(
      'journal_oldest_unacked_age_seconds',
      'Age of the oldest row in the journal; absent when it is empty.',
    ),
    journalCommits: counter('journal_commits_total', 'Journal transactions committed (group commits).'),
    journalCommitFailures: counter('journal_commit_failures_total', 'Journal commits that failed (their appends were refused).'),
    journalCommittedRows: counter('journal_committed_rows_total', 'Rows appended to the journal by committed transactions.'),
    journalRejectedAppends: counter(
      'journal_rejected_appends_total',
      'Appends refused because the journal (limit, reject-new) or the disk was full.',
    ),
    journalLastCommit: gauge('journal_last_commit_seconds', 'Duration of the last journal commit.'),
    journalCommitSeconds: new ExportedHistogram(
      registry,
      'journal_commit_seconds',
      'Duration of journal commits (the transaction, its fsync included).',
    ),
    journalAppendSeconds: new ExportedHistogram(
      registry,
      'journal_append_seconds',
      "A message's way into the journal, per message: handed over by ingress (MQTT PUBLISH read, device-link Data) -> durable; the PUBACK follows.",
    ),
    journalWaiting: gauge('journal_waiting_records', 'Records waiting for the next group commit.'),
    journalDiskFull: gauge('journal_disk_full', '1 while the disk (or --journal-max-file-bytes) refuses journal writes.'),
    journalDropped: counter(
      'journal_dropped_total',
      'Records the journal let go of before an upstream had them (reported upstream as gaps), by reason.',
      ['reason'],
    ),
    journalPendingGaps: gauge('journal_pending_gaps', 'Gaps recorded and not yet acknowledged by the upstreams.'),
    journalDeadLetters: gauge('journal_dead_letters', 'Records set aside after the backend rejected them too many times.'),
    journalAppendedBytes: counter('journal_appended_bytes_total', 'Payload bytes appended to the journal.'),
    journalFreedBytes: counter(
      'journal_freed_bytes_total',
      'Payload bytes freed from the journal: acknowledged by the upstreams, or dropped.',
    ),
    tailCacheBytes: gauge('journal_tail_cache_bytes', 'Memory held by the cache of the newest committed records.'),
    tailCacheHits: counter('journal_tail_cache_hits_total', 'Uplink reads served from the tail cache.'),
    tailCacheMisses: counter('journal_tail_cache_misses_total', 'Uplink reads that went to SQLite.'),

    // Data at risk: acknowledged to devices, held by no backend yet.
    riskBytes: gauge('data_at_risk_bytes', 'Payload bytes acknowledged to devices and not yet acknowledged by every upstream.'),
    riskRows: gauge('data_at_risk_rows', 'Records acknowledged to devices and not yet acknowledged by every upstream.'),
    riskOldestAge: gauge('data_at_risk_oldest_age_seconds', 'Age of the oldest of those records; absent when there is none.'),
    secondsUntilFull: gauge(
      'journal_seconds_until_full',
      "At the last minute's rates in and out, seconds until the journal limit is reached; absent when the journal is not growing or has no limit.",
    ),
    limitBytes: gauge('journal_limit_bytes', 'The journal limit (--journal-max-bytes); absent without one.'),

    // Upstreams, by name.
    upstreamUp: gauge('upstream_up', '1 while the upstream session is ready (streaming), else 0.', ['upstream']),
    upstreamState: gauge('upstream_state', "1 for the upstream session's current state, 0 for the others.", [
      'upstream',
      'state',
    ]),
    upstreamRefused: gauge(
      'upstream_refused',
      "1 while the upstream refuses the gateway's credentials with this gRPC status: sessions are then tried only every few minutes, or as soon as the token changes.",
      ['upstream', 'status'],
    ),
    upstreamInFlight: gauge('upstream_batches_in_flight', 'Batches sent to the upstream and not acknowledged yet.', ['upstream']),
    upstreamCredit: gauge('upstream_credit', 'Batches the upstream lets the gateway send now.', ['upstream']),
    upstreamBatches: counter('upstream_batches_sent_total', 'Batches sent to the upstream.', ['upstream']),
    upstreamRecords: counter('upstream_records_sent_total', 'Records sent to the upstream (resends included).', ['upstream']),
    upstreamResent: counter(
      'upstream_records_resent_total',
      'Records sent again after a reconnect (sent before, not acknowledged then).',
      ['upstream'],
    ),
    upstreamAcks: counter('upstream_acks_total', 'Batch acknowledgements from the upstream.', ['upstream']),
    upstreamGaps: counter('upstream_gaps_sent_total', 'Gaps (records the journal let go of) reported to the upstream.', [
      'upstream',
    ]),
    upstreamRejections: counter('upstream_rejections_total', 'Records the upstream rejected.', ['upstream']),
    upstreamDeadLettered: counter(
      'upstream_dead_lettered_total',
      'Records set aside after the upstream rejected them too many times.',
      ['upstream'],
    ),
    upstreamDrainWaits: counter(
      'upstream_drain_waits_total',
      'Times the stream took no more and the sender waited for it to drain.',
      ['upstream'],
    ),
    upstreamSessions: counter('upstream_sessions_total', 'Sessions (connection attempts) started.', ['upstream']),
    upstreamFailures: counter('upstream_failures_total', 'Sessions that ended in a failure.', ['upstream']),
    upstreamPendingRows: gauge('upstream_pending_rows', 'Rows routed to the upstream that it has not acknowledged yet.', [
      'upstream',
    ]),
    upstreamPendingBytes: gauge('upstream_pending_bytes', 'Payload bytes of those rows.', ['upstream']),
    upstreamOldestAge: gauge(
      'upstream_oldest_pending_age_seconds',
      'Age of the oldest of those rows; absent when there is none.',
      ['upstream'],
    ),
    upstreamAckSeconds: new ExportedHistogram<'upstream'>(
      registry,
      'upstream_ack_seconds',
      "A batch written to the upstream's stream -> its Ack (the network both ways and the backend's commit), per batch.",
    ),
    upstreamDeliverySeconds: new ExportedHistogram<'upstream'>(
      registry,
      'upstream_delivery_seconds',
      "A message's arrival at the gateway -> the upstream's Ack for it, per message: the whole path (an outage's backlog counts its whole age).",
    ),

    // Commands from the backend to devices.
    commandsReceived: counter('commands_received_total', 'Commands received from the backend.'),
    commandsDelivered: counter('commands_delivered_total', 'Commands delivered to their device.'),
    commandsFinished: counter('commands_total', 'Commands that reached a final state, by outcome.', ['outcome']),
    commandUnknownResults: counter(
      'command_results_unknown_total',
      'Command results from devices for commands the gateway does not know.',
    ),
    commandsStored: gauge('commands_stored', 'Commands held by the gateway (pending, or kept after their outcome).'),
  };
}

/** A gauge with no value is left out of the output rather than shown as 0 (or NaN). */
function setOrClear<L extends string>(gauge: Gauge<L>, labels: LabelValues<L>, value: number | null): void {
  if (value === null || !Number.isFinite(value)) gauge.remove(labels);
  else gauge.set(labels, value);
}

function seconds(ms: number | null): number | null {
  return ms === null ? null : ms / 1000;
}
