/**
 * The package layout, checked from the sources and the manifests: the product (core, protos, common,
 * device-sdk, gateway) sits below its tools (cloud-stub, simulators, cli), never the other way round, and every
 * package declares what its sources import, so that it installs and runs outside this repository.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The @fleetgate packages each workspace may import; optional peers marked "?". */
const ALLOWED: Record<string, string[]> = {
  core: [],
  protos: [],
  common: ['core'],
  'device-sdk': ['core', 'protos'],
  gateway: ['core', 'common', 'protos'],
  'cloud-stub': ['core', 'common', 'protos'],
  simulators: ['core', 'common', 'device-sdk', 'cloud-stub'],
  cli: ['core', 'common', 'gateway', 'cloud-stub?', 'simulators?'],
};
/** Third-party packages the device SDK may bring (better-sqlite3 only as an optional peer). */
const DEVICE_SDK_THIRD_PARTY = ['@grpc/grpc-js', 'better-sqlite3'];
/** Files that run only from the repository's sources, never from an installed package (not built either). */
const SOURCE_ONLY = new Set(['common/src/dev-worker-entry.js']);

interface Manifest {
  name: string;
  private?: boolean;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  devDependencies?: Record<string, string>;
}

interface Import {
  file: string;
  specifier: string;
  /** `import type` / `export type`: erased from the JavaScript. */
  typeOnly: boolean;
}

const manifest = (workspace: string) => JSON.parse(readFileSync(join(ROOT, workspace, 'package.json'), 'utf8')) as Manifest;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    return statSync(path).isDirectory() ? sourceFiles(path) : /\.(ts|js)$/.test(entry) ? [path] : [];
  });
}

/** Every module specifier in a package's src/: static and dynamic imports, re-exports, require(). */
function importsOf(workspace: string): Import[] {
  const found: Import[] = [];
  for (const path of sourceFiles(join(ROOT, workspace, 'src'))) {
    const file = relative(ROOT, path);
    const text = readFileSync(path, 'utf8');
    for (const m of text.matchAll(/^\s*(?:import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]/gm)) {
      found.push({ file, specifier: m[2]!, typeOnly: Boolean(m[1]) });
    }
    for (const m of text.matchAll(/\b(?:import|require)\(\s*['"]([^'"]+)['"]\s*\)/g))
      found.push({ file, specifier: m[1]!, typeOnly: false });
  }
  return found;
}

/** '@scope/name/sub' -> '@scope/name'; 'name/sub' -> 'name'; undefined for relative and node: imports. */
function packageOf(specifier: string): string | undefined {
  if (specifier.startsWith('.') || specifier.startsWith('node:') || builtinModules.includes(specifier)) return undefined;
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

describe('package layout', function () {
  this.timeout(20_000);
  const rootWorkspaces = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { workspaces: string[] }).workspaces;

  it('layout - the workspaces are the packages this test knows, each publishable under @fleetgate/', () => {
    assert.deepEqual([...rootWorkspaces].sort(), Object.keys(ALLOWED).sort());
    for (const workspace of rootWorkspaces) {
      const m = manifest(workspace);
      assert.equal(m.name, `@fleetgate/${workspace}`);
      assert.notEqual(m.private, true, `${m.name} is private`);
    }
  });

  for (const workspace of Object.keys(ALLOWED)) {
    it(`layout - ${workspace} imports only the @fleetgate packages below it, and declares every package it imports`, () => {
      const m = manifest(workspace);
      const runtime = { ...m.dependencies, ...m.peerDependencies };
      const optional = new Set(
        Object.entries(m.peerDependenciesMeta ?? {})
          .filter(([, meta]) => meta.optional)
          .map(([name]) => name),
      );
      const allowed = new Map(ALLOWED[workspace]!.map((entry) => [`@fleetgate/${entry.replace('?', '')}`, entry.endsWith('?')]));
      const problems: string[] = [];
      for (const declared of Object.keys(runtime).filter((name) => name.startsWith('@fleetgate/'))) {
        if (!allowed.has(declared)) problems.push(`package.json declares ${declared}, which ${workspace} must not depend on`);
        else if (allowed.get(declared) !== optional.has(declared))
          problems.push(`${declared} must ${allowed.get(declared) ? '' : 'not '}be an optional peer`);
      }
      for (const { file, specifier, typeOnly } of importsOf(workspace)) {
        if (SOURCE_ONLY.has(file)) continue;
        if (
          specifier.startsWith('../') &&
          !relative(join(ROOT, workspace, 'src'), join(ROOT, file, '..', specifier))
            .split('/')
            .every((p) => p !== '..')
        ) {
          problems.push(`${file} reaches outside its package: ${specifier}`);
        }
        const name = packageOf(specifier);
        if (!name || name === m.name) continue;
        if (name.startsWith('@fleetgate/') && !allowed.has(name))
          problems.push(`${file} imports ${specifier}, which ${workspace} must not depend on`);
        else if (!(name in runtime) && !(typeOnly && name in (m.devDependencies ?? {})))
          problems.push(`${file} imports ${specifier}, not declared in ${workspace}/package.json`);
        if (workspace === 'device-sdk' && !name.startsWith('@fleetgate/') && !DEVICE_SDK_THIRD_PARTY.includes(name))
          problems.push(`the device SDK must not bring ${name} (${file})`);
      }
      assert.deepEqual(problems, []);
    });
  }

  it('layout - the device SDK and core load SQLite only on demand: better-sqlite3 is an optional peer, imported for its types only', () => {
    for (const workspace of ['device-sdk', 'core']) {
      const m = manifest(workspace);
      assert.equal(m.dependencies?.['better-sqlite3'], undefined, `${workspace} depends on better-sqlite3`);
      assert.ok(
        m.peerDependencies?.['better-sqlite3'] && m.peerDependenciesMeta?.['better-sqlite3']?.optional,
        `${workspace}: better-sqlite3 is an optional peer`,
      );
      const loads = importsOf(workspace).filter((i) => packageOf(i.specifier) === 'better-sqlite3' && !i.typeOnly);
      assert.deepEqual(loads, [], `${workspace} imports better-sqlite3 at load time`);
    }
    assert.equal(manifest('core').dependencies, undefined, '@fleetgate/core has no dependencies');
  });

  it('layout - no package runs TypeScript at run time: tsx, typescript and ts-node are no runtime dependency', () => {
    for (const workspace of rootWorkspaces) {
      const m = manifest(workspace);
      for (const tool of ['tsx', 'typescript', 'ts-node']) {
        assert.equal({ ...m.dependencies, ...m.peerDependencies }[tool], undefined, `${m.name} depends on ${tool}`);
      }
    }
  });
});
