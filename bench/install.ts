/**
 * `npm run bench -- install`: what each audience's install weighs, from the release tarballs (npm pack of every
 * workspace) installed into empty projects as test/repo/packages.test.ts installs them: the device SDK alone
 * (memory outbox), the SDK with better-sqlite3 (SQLite outbox), a site (the CLI and the gateway), a lab (the
 * site plus the backend and the simulator). Bytes of node_modules (files, not blocks; better-sqlite3 with only
 * its prebuilt binary in build/, as on a Pi) and the number of packages. `--root` packs another checkout.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { folderBytes, installedPackages, npmInstall, packWorkspaces, sqliteVersion } from '../test/support/packages.ts';
import { printReport, type BenchReport } from './lib/report.ts';

const AUDIENCES: Record<string, { packages: string[]; sqlite?: boolean }> = {
  sdk: { packages: ['device-sdk', 'core', 'protos'] },
  sdkWithSqlite: { packages: ['device-sdk', 'core', 'protos'], sqlite: true },
  site: { packages: ['cli', 'gateway', 'common', 'core', 'protos'], sqlite: true },
  lab: { packages: ['cli', 'gateway', 'common', 'core', 'protos', 'cloud-stub', 'simulators', 'device-sdk'], sqlite: true },
};

export async function install(argv: string[]): Promise<BenchReport> {
  const { values } = parseArgs({ args: argv, options: { root: { type: 'string' }, json: { type: 'boolean', default: false } } });
  const dir = mkdtempSync(join(tmpdir(), 'fleetgate-bench-install-'));
  try {
    const tarballs = await packWorkspaces(dir, values.root);
    const figures: Record<string, { MB: number; packages: number } | string> = {};
    for (const [audience, { packages, sqlite }] of Object.entries(AUDIENCES)) {
      const missing = packages.filter((name) => !tarballs[`@fleetgate/${name}`]);
      if (missing.length) {
        figures[audience] = `no package ${missing.join(', ')} in this checkout`;
        continue;
      }
      const project = join(dir, audience);
      await npmInstall(project, [
        ...packages.map((name) => tarballs[`@fleetgate/${name}`]!),
        ...(sqlite ? [`better-sqlite3@${sqliteVersion()}`] : []),
      ]);
      const modules = join(project, 'node_modules');
      figures[audience] = { MB: +(folderBytes(modules) / 1e6).toFixed(1), packages: installedPackages(modules).length };
    }
    const line = (name: string) => {
      const f = figures[name]!;
      return typeof f === 'string' ? `${name}: ${f}` : `${name} ${f.MB} MB (${f.packages} packages)`;
    };
    const report: BenchReport = {
      name: 'install',
      settings: { ...values },
      figures,
      summary: Object.keys(AUDIENCES).map(line).join('; '),
    };
    printReport(report, values.json!);
    return report;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
