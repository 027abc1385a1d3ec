/**
 * @fleetgate/core: what every fleetgate package shares and a device may load: errors, the clock and timers,
 * backoff, connectivity states, addresses and ids. No dependencies; nothing here opens a file or a socket.
 * SQLite is the subpath `@fleetgate/core/sqlite` (it loads better-sqlite3 when a database is opened).
 */
export { parseHostPort, formatHostPort, type HostPort } from './address.ts';
export { Backoff, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.ts';
export { ConfigError, FleetgateError, errorMessage } from './errors.ts';
export { DURABILITIES, type Durability } from './durability.ts';
export { systemClock, systemTimers, type Clock, type TimerHandle, type Timers } from './timers.ts';
export { ConnectivityState, ConnectivityTracker, type StateChange } from './connectivity.ts';
export { DURATION_BUCKETS_MS, DurationHistogram, quantileMs, type HistogramSnapshot } from './histogram.ts';
export { LogSampler } from './log-sampler.ts';
export { DEVICE_ID_PATTERN, ID_PATTERN, isLabel } from './ids.ts';
