import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh temp folder per test, removed after it: `const dir = useTempDir(); ... dir.path`. */
export function useTempDir(prefix = 'fleetgate-test-'): { readonly path: string } {
  let current: string | undefined;
  beforeEach(() => {
    current = mkdtempSync(join(tmpdir(), prefix));
  });
  afterEach(() => {
    if (current) rmSync(current, { recursive: true, force: true });
    current = undefined;
  });
  return {
    get path(): string {
      if (!current) throw new Error('useTempDir().path read outside a test');
      return current;
    },
  };
}
