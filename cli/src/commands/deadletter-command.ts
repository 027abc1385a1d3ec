/**
 * `fleetgate deadletter list|show|replay|drop --data DIR`: the records the backend refused as invalid again and
 * again, kept in the journal's database. Safe while the gateway runs (SQLite WAL: readers and one writer at a
 * time, with a busy timeout). A replay marks the letter; the gateway sends it again as a new record within a
 * few seconds, or when it next starts.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { ConfigError } from '@fleetgate/core';
import { openSqlite, type SqliteDatabase } from '@fleetgate/core/sqlite';
import { type DeadLetter, DeadLetters, JOURNAL_FILE, SqliteDeadLetterTable } from '@fleetgate/gateway';

const DATA_HELP = "the gateway's data folder (its --data)";

export function deadletterCommand(): Command {
  const command = new Command('deadletter').description(
    'records the backend refused as invalid: list, show, replay or drop them',
  );

  command
    .command('list')
    .description('one line per dead letter (seq, device, stream, size, reason, when, replay mark)')
    .requiredOption('--data <dir>', DATA_HELP)
    .option('--json', 'one JSON object per line instead of a table (payloads in base64)')
    .action((flags: { data: string; json?: boolean }) =>
      withLetters(flags.data, (letters) => {
        const all = letters.list();
        if (flags.json) {
          for (const l of all) process.stdout.write(`${JSON.stringify(asJson(l))}\n`);
          return;
        }
        if (all.length === 0) return void process.stdout.write('no dead letters\n');
        process.stdout.write(`${['SEQ', 'DEVICE', 'STREAM', 'BYTES', 'DEAD AT', 'REPLAY', 'REASON'].join('\t')}\n`);
        for (const l of all) {
          process.stdout.write(
            `${[l.seq, l.deviceId, l.stream || '-', l.payload.length, new Date(l.deadAtMs).toISOString(), l.replay ? 'marked' : '-', l.upstreams.length > 0 ? `${l.upstreams.join(',')}: ${l.reason}` : l.reason].join('\t')}\n`,
          );
        }
        process.stdout.write(`${all.length} dead letter${all.length === 1 ? '' : 's'}\n`);
      }),
    );

  command
    .command('show')
    .description('one dead letter whole, its payload as text when it is text, else as hex')
    .argument('<seq>', 'the seq the gateway gave the record')
    .requiredOption('--data <dir>', DATA_HELP)
    .action((seq: string, flags: { data: string }) =>
      withLetters(flags.data, (letters) => {
        const letter = letters.get(parseSeq(seq));
        if (!letter) throw new ConfigError('<seq>', `no dead letter with seq ${seq}`);
        for (const [key, value] of Object.entries(asJson(letter)))
          if (key !== 'payload') process.stdout.write(`${key}: ${value}\n`);
        const bytes = letter.payload;
        const text = bytes.toString('utf8');
        const printable =
          Buffer.from(text, 'utf8').equals(bytes) && ![...bytes].some((b) => b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d);
        process.stdout.write(
          printable
            ? `payload (${bytes.length} bytes, text):\n${text}\n`
            : `payload (${bytes.length} bytes, hex):\n${bytes.toString('hex')}\n`,
        );
      }),
    );

  for (const [name, verb, act] of [
    [
      'replay',
      'mark for sending again (as a new record, after the backend is fixed)',
      (l: DeadLetters, seq: number) => l.markReplay(seq),
    ],
    ['drop', 'delete for good', (l: DeadLetters, seq: number) => l.drop(seq)],
  ] as const) {
    command
      .command(name)
      .description(`${verb}: the letters with these seqs, or --all`)
      .argument('[seqs...]', 'seqs of the letters')
      .requiredOption('--data <dir>', DATA_HELP)
      .option('--all', 'every dead letter')
      .action((seqs: string[], flags: { data: string; all?: boolean }) =>
        withLetters(flags.data, (letters) => {
          if (flags.all === seqs.length > 0) throw new ConfigError('<seqs>', 'give the seqs of the letters, or --all (not both)');
          const targets = flags.all ? letters.list().map((l) => l.seq) : seqs.map(parseSeq);
          const missing = targets.filter((seq) => !act(letters, seq));
          const done = targets.length - missing.length;
          const what =
            name === 'replay' ? 'marked for replay (the gateway sends them within seconds, or at its next start)' : 'dropped';
          process.stdout.write(`${done} dead letter${done === 1 ? '' : 's'} ${what}\n`);
          if (missing.length > 0) throw new ConfigError('<seqs>', `no dead letter with seq ${missing.join(', ')}`);
        }),
      );
  }
  return command;
}

function withLetters(dataDir: string, use: (letters: DeadLetters) => void): void {
  let db: SqliteDatabase | undefined;
  try {
    const file = join(dataDir, JOURNAL_FILE);
    if (!existsSync(file)) throw new ConfigError('--data', `no journal in ${dataDir} (expected ${file})`);
    db = openSqlite(file, { durability: 'power' });
    use(new DeadLetters(new SqliteDeadLetterTable(db)));
  } catch (err: unknown) {
    process.stderr.write(`fleetgate deadletter: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  } finally {
    db?.close();
  }
}

function parseSeq(value: string): number {
  const seq = Number(value);
  if (!Number.isSafeInteger(seq) || seq < 1) throw new ConfigError('<seq>', `"${value}" is not a seq (a whole number from 1)`);
  return seq;
}

function asJson(l: DeadLetter) {
  return {
    seq: l.seq,
    deviceId: l.deviceId,
    stream: l.stream,
    contentType: l.contentType,
    deviceSeq: l.deviceSeq,
    deviceTime: new Date(l.deviceTimeMs).toISOString(),
    gatewayTime: new Date(l.gatewayTimeMs).toISOString(),
    deadAt: new Date(l.deadAtMs).toISOString(),
    reason: l.reason,
    upstreams: l.upstreams,
    replay: l.replay,
    payload: l.payload.toString('base64'),
  };
}
