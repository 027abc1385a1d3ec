/**
 * @fleetgate/gateway: the edge gateway as a library. `Gateway.start(options)` runs one (MQTT and device-link
 * listeners, the journal thread, uplinks, commands, admin); the `fleetgate` CLI (@fleetgate/cli) reads config
 * files, environment and flags into these options. Also here: what the CLI reads of a gateway's data folder
 * (dead letters) and the names it checks (device ids, ACL files).
 */
export { Gateway, type GatewayStartOptions } from './gateway.ts';
export type { GatewayStats, UpstreamStats } from './stats.ts';
export {
  DEFAULT_UPSTREAM_NAME,
  GATEWAY_DEFAULTS,
  validateGatewayOptions,
  type GatewayOptions,
  type RouteOptions,
  type UpstreamOptions,
} from './options.ts';
export { Acl } from './ingress/acl.ts';
export { DEVICE_ID } from './ingress/topics.ts';
export { DeadLetters, type DeadLetter } from './journal/dead-letters.ts';
export { SqliteDeadLetterTable } from './journal/sqlite/dead-letter-table.ts';
export { JOURNAL_FILE } from './journal/sqlite/schema.ts';
export { VERSION } from './version.ts';
export * from './errors.ts';
