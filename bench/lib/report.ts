import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface BenchReport {
  name: string;
  settings: Record<string, unknown>;
  figures: Record<string, unknown>;
  /** One line a person can read. */
  summary: string;
}

const RESULTS = fileURLToPath(new URL('../results/', import.meta.url));

/** Writes the report under bench/results/ and prints it: JSON with --json, else the summary and figures. */
export function printReport(report: BenchReport, json: boolean): void {
  const at = new Date().toISOString();
  mkdirSync(RESULTS, { recursive: true });
  const file = `${RESULTS}${report.name}-${at.replace(/[:.]/g, '-')}.json`;
  writeFileSync(file, JSON.stringify({ ...report, at, node: process.version }, null, 2) + '\n');
  if (json) {
    process.stdout.write(JSON.stringify({ ...report, at, file }) + '\n');
  } else {
    process.stdout.write(`\n${report.name}: ${report.summary}\n${JSON.stringify(report.figures, null, 2)}\nwritten to ${file}\n`);
  }
}
