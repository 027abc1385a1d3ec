/**
 * The release tarballs as users install them: `npm pack` of every workspace (built first), installed into a
 * temp folder with npm, from those tarballs and the registry (npm's cache first). Used by the installed-package
 * tests and by `npm run bench -- install`.
 *
 * better-sqlite3 is installed without its install script and given the binary this repository already built
 * for this Node, as its prebuilt binary would be on a Raspberry Pi (prebuild-install): the script would compile
 * SQLite from source here (no prebuilt binary is reachable), which costs CI a minute and a half and tests
 * nothing of ours.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const run = promisify(execFile);

/** The tarball of each workspace, by package name (e.g. '@fleetgate/cli' -> '/tmp/.../fleetgate-cli-0.1.0.tgz'). */
export type Tarballs = Record<string, string>;

/** `npm pack --workspaces` of the built repository (or of another checkout, `root`) into `dir`. */
export async function packWorkspaces(dir: string, root = ROOT): Promise<Tarballs> {
  const { stdout } = await run('npm', ['pack', '--workspaces', '--json', '--pack-destination', dir], {
    cwd: root,
    maxBuffer: 64 << 20,
  });
  const packed = JSON.parse(stdout) as { name: string; filename: string }[];
  return Object.fromEntries(packed.map((p) => [p.name, join(dir, p.filename)]));
}

/** The better-sqlite3 version this repository runs (and built a binary for). */
export function sqliteVersion(): string {
  return (JSON.parse(readFileSync(join(ROOT, 'node_modules/better-sqlite3/package.json'), 'utf8')) as { version: string })
    .version;
}

/**
 * `npm install` of `specs` (tarball paths or registry specs) into the project `dir` (made if needed), without
 * install scripts; a better-sqlite3 that lands there gets the prebuilt binary. One project, one tree: npm
 * dedupes @grpc/grpc-js, which the generated protos and the packages using them must share (a global install
 * of several tarballs would give each its own copy).
 */
export async function npmInstall(dir: string, specs: string[]): Promise<void> {
  mkdirSync(dir, { recursive: true });
  if (!existsSync(join(dir, 'package.json'))) await run('npm', ['init', '-y'], { cwd: dir });
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', ...specs], {
    cwd: dir,
    maxBuffer: 64 << 20,
    timeout: 170_000,
  });
  for (const pkg of installedPackages(join(dir, 'node_modules')).filter((p) => p.name === 'better-sqlite3')) {
    const target = join(pkg.dir, 'build/Release');
    mkdirSync(target, { recursive: true });
    copyFileSync(
      join(ROOT, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node'),
      join(target, 'better_sqlite3.node'),
    );
  }
}

/** Every package under a node_modules folder, nested ones included. */
export function installedPackages(nodeModules: string): { name: string; version: string; dir: string }[] {
  const found: { name: string; version: string; dir: string }[] = [];
  const visit = (modules: string) => {
    if (!existsSync(modules)) return;
    for (const entry of readdirSync(modules)) {
      if (entry.startsWith('.')) continue;
      const dirs = entry.startsWith('@')
        ? readdirSync(join(modules, entry)).map((e) => join(modules, entry, e))
        : [join(modules, entry)];
      for (const dir of dirs) {
        const manifest = join(dir, 'package.json');
        if (!existsSync(manifest)) continue;
        const { name, version } = JSON.parse(readFileSync(manifest, 'utf8')) as { name: string; version: string };
        found.push({ name, version, dir });
        visit(join(dir, 'node_modules'));
      }
    }
  };
  visit(nodeModules);
  return found;
}

/** Bytes of a folder, as `du` would count files (not blocks). */
export function folderBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    const stat = lstatSync(path, { throwIfNoEntry: false });
    if (!stat || stat.isSymbolicLink()) continue;
    total += stat.isDirectory() ? folderBytes(path) : stat.size;
  }
  return total;
}
