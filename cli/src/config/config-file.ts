/**
 * The YAML file of `fleetgate gateway --config FILE` and `fleetgate cloud --config FILE`: one mapping whose keys
 * are the long flag names without `--` (`journal-max-bytes: 500MB`), plus, for the gateway, the lists only a file
 * can express (`upstreams:`, `routes:`). This module reads and parses it; what the keys mean is settings.ts.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';
import { ConfigError } from '@fleetgate/core';
import { didYouMean } from './did-you-mean.ts';

export interface ConfigFile {
  /** The path as the user gave it: error messages start with it. */
  path: string;
  /** The file's folder: relative paths inside the file are relative to it. */
  dir: string;
  /** Top-level key -> its value as plain data (strings, numbers, booleans, null, arrays, objects). */
  entries: Map<string, unknown>;
}

/** Reads and parses `path`; a YAML mistake is a ConfigError naming `path:line:column`. */
export function loadConfigFile(path: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err: unknown) {
    throw new ConfigError(path, `cannot read the config file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseConfigText(path, text);
}

export function parseConfigText(path: string, text: string): ConfigFile {
  // yaml is loaded with the first config file: `fleetgate gateway` on flags alone does not carry it.
  const { isMap, LineCounter, parseDocument } = createRequire(import.meta.url)('yaml') as typeof Yaml;
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const error = doc.errors[0];
  if (error) {
    const { line, col } = lineCounter.linePos(error.pos[0]);
    throw new ConfigError(`${path}:${line}:${col}`, `not valid YAML: ${error.message}`);
  }
  const file: ConfigFile = { path, dir: dirname(resolve(path)), entries: new Map() };
  if (doc.contents === null) return file; // empty, or comments only: every setting at its default
  if (!isMap(doc.contents)) throw new ConfigError(path, 'must be a mapping of settings (key: value), one per line');
  const data = doc.toJS({ maxAliasCount: 100 }) as Record<string, unknown>;
  for (const [key, value] of Object.entries(data)) file.entries.set(key, value);
  return file;
}

/** The refusal of a key nobody knows, with the closest known one when it is probably a typo. */
export function unknownKey(field: string, key: string, known: Iterable<string>): ConfigError {
  const suggestion = didYouMean(key, known);
  return new ConfigError(field, `unknown setting${suggestion ? `; did you mean ${suggestion}?` : ''}`);
}

/** A path written in the file, made absolute against the file's folder. */
export function pathInFile(file: ConfigFile, value: string): string {
  return isAbsolute(value) ? value : resolve(file.dir, value);
}

/** A value as it is quoted in an error message: strings in quotes, the rest as YAML would show it. */
export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return 'a list';
  if (value !== null && typeof value === 'object') return 'a mapping';
  return String(value);
}
