/**
 * Programs from the system (Debian packages) that some tests drive for real: Chromium for the pages, nats-server
 * for the JetStream clusters, Python's grpcio for a grpc-core backend, Paho for a third-party MQTT 5 client. A machine without one reports those tests as skipped, naming the package and the
 * command that installs it; the closing line then says ", N skipped". CI (.ci/run) installs every one and sets
 * FLEETGATE_REQUIRE_SYSTEM=1, under which a missing program fails the test instead: CI skips nothing.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface SystemProgram {
  /** What the tests use it for, in the skip message. */
  what: string;
  /** The command that installs it on Debian. */
  install: string;
  /** Its path, or undefined when this machine lacks it. */
  locate(): string | undefined;
}

/** An executable `name` on PATH or where Debian puts it (/usr/sbin is not on every user's PATH). */
function onPath(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/usr/local/bin', '/usr/bin'];
  for (const dir of dirs.filter(Boolean)) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not here
    }
  }
  return undefined;
}

export const CHROMIUM: SystemProgram = {
  what: "Chromium (CHROMIUM_PATH, or Debian's /usr/bin/chromium)",
  install: 'apt-get install chromium',
  locate: () => {
    const path = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      return undefined;
    }
  },
};

export const NATS_SERVER: SystemProgram = {
  what: 'nats-server (a real JetStream cluster)',
  install: 'apt-get install nats-server',
  locate: () => onPath('nats-server'),
};

/** Debian's python3 (not a pyenv one on PATH) with grpcio and protobuf: a gRPC server built on grpc-core. */
export const PYTHON_GRPCIO: SystemProgram = {
  what: "Debian's python3-grpcio for /usr/bin/python3 (a grpc-core server)",
  install: 'apt-get install python3-grpcio',
  locate: () =>
    spawnSync('/usr/bin/python3', ['-c', 'import grpc, google.protobuf']).status === 0 ? '/usr/bin/python3' : undefined,
};

/** Debian's python3 with Eclipse Paho (1.6 speaks MQTT 5): a third-party MQTT 5 client. */
export const PYTHON_PAHO: SystemProgram = {
  what: "Debian's python3-paho-mqtt for /usr/bin/python3 (Eclipse Paho, an MQTT 5 client)",
  install: 'apt-get install python3-paho-mqtt',
  locate: () => (spawnSync('/usr/bin/python3', ['-c', 'import paho.mqtt.client']).status === 0 ? '/usr/bin/python3' : undefined),
};

/** The message a test without `program` skips (or, in CI, fails) with. */
export function missingMessage(program: SystemProgram): string {
  return `needs ${program.what}, not on this machine: ${program.install} (as root)`;
}

/**
 * In a test or a `before` hook: returns the program's path, or skips the test (from a hook: every test of the
 * suite), each title then ending with the reason. With FLEETGATE_REQUIRE_SYSTEM=1 it throws instead.
 */
export function requireProgram(context: Mocha.Context, program: SystemProgram): string {
  const path = program.locate();
  if (path) return path;
  const message = missingMessage(program);
  if (process.env.FLEETGATE_REQUIRE_SYSTEM === '1') throw new Error(`${message} (FLEETGATE_REQUIRE_SYSTEM=1: CI installs it)`);
  const runnable = context.test;
  const tests =
    runnable && (runnable as { type?: string }).type === 'test' ? [runnable as Mocha.Test] : allTests(runnable?.parent);
  for (const test of tests) test.title += ` (skipped: ${message})`;
  context.skip();
}

function allTests(suite: Mocha.Suite | undefined): Mocha.Test[] {
  return suite ? [...suite.tests, ...suite.suites.flatMap(allTests)] : [];
}
