import { readFileSync } from 'node:fs';

/** The gateway's version, from its package.json (sent in Hello, shown in stats). */
export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
