/**
 * Folder rules, from the sources' imports: no two folders import each other, directly or round a longer loop
 * (the lint's cycle check sees files only), and the journal, the bottom of the gateway's data path, imports
 * nothing from the layers above it (uplink, ingress, admin, device-link, commands, pipeline); and files stay small
 * (no product source file over 400 lines, generated code aside; the median under 150).
 *
 * The units are a package's folders below src/, and each file directly in src/ on its own: a package's root
 * holds both its entry points (index.ts, gateway.ts, main.ts: they import the folders) and modules every folder
 * may use (errors.ts, stats.ts), and only a loop through the same file or folder is a cycle.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PACKAGES = ['core', 'common', 'protos', 'device-sdk', 'gateway', 'cloud-stub', 'simulators', 'cli'];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (entry === 'gen') return [];
    return statSync(path).isDirectory() ? sourceFiles(path) : /\.(ts|js)$/.test(entry) ? [path] : [];
  });
}

/** The unit a file belongs to: its folder, or the file itself when it sits directly in its package's src/. */
function unitOf(file: string): string {
  const path = relative(ROOT, file);
  const folder = dirname(path);
  return PACKAGES.some((pkg) => folder === `${pkg}/src`) ? path : folder;
}

/** unit -> the units its files import (relative imports only; paths relative to the repository). */
function folderGraph(): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>();
  for (const pkg of PACKAGES) {
    for (const file of sourceFiles(join(ROOT, pkg, 'src'))) {
      const from = unitOf(file);
      const edges = graph.get(from) ?? new Set<string>();
      graph.set(from, edges);
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/^\s*(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\sfrom\s+)?['"](\.[^'"]+)['"]/gm)) {
        const to = unitOf(resolve(dirname(file), m[1]!));
        if (to !== from) edges.add(to);
      }
    }
  }
  return graph;
}

/** Every cycle of folders, each as the list of folders round it (Tarjan's strongly connected components). */
function folderCycles(graph: Map<string, Set<string>>): string[][] {
  let index = 0;
  const indices = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string) => {
    indices.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!indices.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, indices.get(w)!));
    }
    if (low.get(v) === indices.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) cycles.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!indices.has(v)) visit(v);
  return cycles;
}

describe('folder rules', function () {
  this.timeout(10_000);
  const graph = folderGraph();

  it('folders - no folder cycles: no two folders import each other, directly or through others', () => {
    assert.deepEqual(folderCycles(graph), []);
  });

  it('folders - the journal imports nothing from the layers above it (uplink, ingress, admin, device-link, commands, pipeline)', () => {
    const above = ['uplink', 'ingress', 'admin', 'device-link', 'commands', 'pipeline'].map((f) => `gateway/src/${f}`);
    const journal = [...graph.entries()].filter(([folder]) => folder.startsWith('gateway/src/journal'));
    const bad = journal.flatMap(([folder, edges]) =>
      [...edges].filter((to) => above.some((a) => to.startsWith(a))).map((to) => `${folder} -> ${to}`),
    );
    assert.deepEqual(bad, []);
  });

  it('files - no product source file over 400 lines (generated code aside), and the median under 150', () => {
    const lengths = PACKAGES.flatMap((pkg) =>
      sourceFiles(join(ROOT, pkg, 'src')).map((file) => ({
        file: relative(ROOT, file),
        lines: readFileSync(file, 'utf8').split('\n').length - 1,
      })),
    );
    assert.deepEqual(
      lengths.filter((f) => f.lines > 400).map((f) => `${f.file}: ${f.lines} lines`),
      [],
    );
    const sorted = lengths.map((f) => f.lines).sort((a, b) => a - b);
    const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
    assert.ok(median < 150, `median ${median} lines`);
  });
});
