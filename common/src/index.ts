export { parseHostPort, formatHostPort, type HostPort } from './address.ts';
export { AdminHttpServer, BadRequest, type JsonResponse, type RouteHandler, type RouteRequest, type Routes } from './admin-http.ts';
export { Backoff, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.ts';
export { ConfigError, FleetgateError, errorMessage } from './errors.ts';
export { closeServer, listen, ListenError } from './listen.ts';
export { createLogger, envLogLevel, silentLogger, type Logger, type LoggerOptions } from './logger.ts';
export { DURABILITIES, openSqlite, type Durability, type OpenSqliteOptions, type SqliteDatabase } from './sqlite.ts';
export { systemClock, systemTimers, type Clock, type TimerHandle, type Timers } from './timers.ts';
export { startWorker } from './ts-worker.ts';
