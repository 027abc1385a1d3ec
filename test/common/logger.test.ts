import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { createLogger, envLogLevel, REDACTED, resolveLogFormat } from '../../common/src/logger.ts';
import { SOURCE_NODE_ARGS } from '../support/source-node.ts';

const LOGGER_URL = pathToFileURL(new URL('../../common/src/logger.ts', import.meta.url).pathname).href;
const WORKER_URL = pathToFileURL(new URL('../../common/src/worker.ts', import.meta.url).pathname).href;
const SECRETS = ['t0ken-value', 'pa55word', 's3cret', 'PRIVATE-PEM', 'Bearer abc'];
// oxlint-disable-next-line no-control-regex
const ANSI = /\u001b\[/;

/** Runs `code` (a script, whose imports are dynamic) in a child Node with tsx, stdout a pipe, and returns its stdout. */
async function runChild(code: string, env: Record<string, string>): Promise<string> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const name of ['FLEETGATE_LOG_LEVEL', 'FLEETGATE_LOG_FORMAT', 'FORCE_COLOR'] as const)
    if (!(name in env)) delete childEnv[name];
  const { stdout } = await promisify(execFile)(process.execPath, [...SOURCE_NODE_ARGS, '-e', `(async () => { ${code} })()`], {
    env: childEnv,
    timeout: 20_000,
  });
  return stdout;
}

/** What each process logs: a debug line, secrets in every shape the code could log them, a line from a child logger. */
const LOG_LINES = `
  logger.debug('not shown below info');
  logger.info({ token: 't0ken-value', password: 'pa55word', tokenFile: '/etc/fleetgate/gateway.token' }, 'fields');
  logger.info({ options: { tls: { key: 'PRIVATE-PEM', cert: 'CERT' } }, metadata: { authorization: 'Bearer abc' } }, 'nested');
  logger.child({ secret: 's3cret', thread: 'journal' }).warn('child');
`;

describe('logger', function () {
  it('logger - JSON lines on a pipe, level from FLEETGATE_LOG_LEVEL, tokens, passwords, secrets and keys redacted', async () => {
    const code = `const { createLogger } = await import('${LOGGER_URL}'); const logger = createLogger({ name: 'test' });${LOG_LINES}`;
    const [stdout, warnOnly] = await Promise.all([
      runChild(code, { FLEETGATE_LOG_LEVEL: 'info' }),
      runChild(code, { FLEETGATE_LOG_LEVEL: 'warn' }),
    ]);
    const lines = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual(
      lines.map((line) => line.msg),
      ['fields', 'nested', 'child'],
    );
    assert.deepEqual(
      [lines[0]!.token, lines[0]!.password, lines[0]!.tokenFile],
      [REDACTED, REDACTED, '/etc/fleetgate/gateway.token'],
    );
    assert.deepEqual(lines[1]!.options, { tls: { key: REDACTED, cert: 'CERT' } });
    assert.deepEqual(lines[1]!.metadata, { authorization: REDACTED });
    assert.equal(lines[2]!.secret, REDACTED);
    for (const secret of SECRETS) assert.ok(!stdout.includes(secret), `${secret} in the output`);
    assert.deepEqual(
      warnOnly
        .trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as { msg: string }).msg),
      ['child'],
    );
  });

  it('logger - FLEETGATE_LOG_FORMAT=pretty prints human-readable lines, in order, from the main thread and a worker thread', async () => {
    // The worker is started the way the gateway starts its journal thread (startWorker), so it creates its own logger.
    const worker = `data:text/javascript,${encodeURIComponent(`import { createLogger } from '${LOGGER_URL}'; const logger = createLogger({ name: 'worker' });${LOG_LINES}`)}`;
    const code = `
      const { once } = await import('node:events');
      const { createLogger } = await import('${LOGGER_URL}');
      const { startWorker } = await import('${WORKER_URL}');
      const logger = createLogger({ name: 'main' });
      logger.info('before the worker');
      const worker = startWorker(new URL(${JSON.stringify(worker)}), null, 'logger-test');
      await once(worker, 'exit');
      logger.info({ token: 't0ken-value' }, 'after the worker');`;
    const stdout = await runChild(code, { FLEETGATE_LOG_FORMAT: 'pretty' });
    const headlines = stdout.split('\n').filter((line) => line.startsWith('['));
    assert.deepEqual(
      headlines.map((line) => line.replace(/^\[[\d:.]+\] /, '').replace(/\/\d+\)/, ')')),
      [
        'INFO (main): before the worker',
        'INFO (worker): fields',
        'INFO (worker): nested',
        'WARN (worker): child',
        'INFO (main): after the worker',
      ],
    );
    assert.match(stdout, /token: "\[redacted\]"/);
    assert.ok(!ANSI.test(stdout), 'no colours on a pipe');
    for (const secret of SECRETS) assert.ok(!stdout.includes(secret), `${secret} in the output`);
  });

  it('logger - pretty on a terminal, JSON on a pipe or journald, unless FLEETGATE_LOG_FORMAT says which', () => {
    assert.equal(resolveLogFormat(undefined, true), 'pretty');
    assert.equal(resolveLogFormat(undefined, false), 'json');
    assert.equal(resolveLogFormat('json', true), 'json');
    assert.equal(resolveLogFormat('pretty', false), 'pretty');
    assert.equal(resolveLogFormat('colour', false), 'json', 'an unknown value leaves the choice to the terminal');
  });

  it('logger - a given destination gets JSON unless pretty is asked for; an unknown level in the environment means info', () => {
    const written: string[] = [];
    const destination = { write: (line: string) => void written.push(line) };
    createLogger({ name: 'test', level: 'info', destination }).info({ authorization: 'Bearer abc' }, 'json');
    createLogger({ name: 'test', level: 'info', destination, format: 'pretty' }).info({ authorization: 'Bearer abc' }, 'pretty');
    assert.equal((JSON.parse(written[0]!) as { authorization: string }).authorization, REDACTED);
    assert.match(written[1]!, /INFO \(test\/\d+\): pretty\n {4}authorization: "\[redacted\]"\n/);
    assert.ok(!ANSI.test(written[1]!), 'no colours into a destination');

    const saved = process.env.FLEETGATE_LOG_LEVEL;
    try {
      process.env.FLEETGATE_LOG_LEVEL = 'debug';
      assert.equal(envLogLevel(), 'debug');
      process.env.FLEETGATE_LOG_LEVEL = 'loud';
      assert.equal(envLogLevel(), 'info');
    } finally {
      if (saved === undefined) delete process.env.FLEETGATE_LOG_LEVEL;
      else process.env.FLEETGATE_LOG_LEVEL = saved;
    }
  });
});
