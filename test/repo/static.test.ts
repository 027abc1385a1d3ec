/** Checks on the repository itself, run with the suite so that CI reports them in the same closing line. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'node_modules/.bin');
const run = promisify(execFile);

async function check(command: string, args: string[], cwd = ROOT): Promise<void> {
  try {
    await run(join(BIN, command), args, {
      cwd,
      maxBuffer: 16 << 20,
      env: { ...process.env, PATH: `${BIN}:${process.env.PATH}` },
    });
  } catch (err: unknown) {
    const { stdout = '', stderr = '' } = err as { stdout?: string; stderr?: string };
    assert.fail(`${command} ${args.join(' ')} failed:\n${stdout}\n${stderr}`.slice(0, 8000));
  }
}

/** The arguments of `npm run <name>` (a script `command ...`), so that the test runs exactly what the script does. */
function scriptArgs(name: string, command: string): string[] {
  const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  // The first command of the script (`a ... && b ...`: a's arguments).
  const [head, ...args] = scripts[name]!.split('&&')[0]!.trim().split(/\s+/);
  assert.equal(head, command, `npm run ${name} runs ${command}`);
  return args;
}

describe('repository', function () {
  this.timeout(120_000);

  it('repo - type-checks under strict TypeScript (tsc --noEmit)', () => check('tsc', ['-p', 'tsconfig.json']));

  it('repo - lints clean (oxlint, warnings denied)', () => check('oxlint', scriptArgs('lint', 'oxlint')));

  it('repo - is formatted (prettier --check; `npm run format` writes it)', () =>
    check('prettier', ['--check', '--log-level', 'warn', '.']));

  it('repo - has no import cycles', () => check('oxlint', scriptArgs('cycles', 'oxlint')));

  it('repo - the generated protobuf code is exactly what buf generates from the .proto files', async () => {
    const out = mkdtempSync(join(tmpdir(), 'fleetgate-gen-'));
    try {
      await check('buf', ['generate', '-o', out], join(ROOT, 'protos'));
      for (const file of ['commands.ts', 'device.ts', 'uplink.ts']) {
        const generated = join(out, 'src/gen/fleetgate/v1', file);
        const committed = join(ROOT, 'protos/src/gen/fleetgate/v1', file);
        assert.equal(
          readFileSync(committed, 'utf8'),
          readFileSync(generated, 'utf8'),
          `${file}: run \`npm run generate\` and commit the result`,
        );
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
