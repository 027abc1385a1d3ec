import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findDamage, openJournal, subtract, type OpenedJournal } from '../../gateway/src/journal/sqlite/heal.ts';
import type { NewRecord } from '../../gateway/src/journal/journal.ts';
import { JOURNAL_FILE, SqliteJournal } from '../../gateway/src/journal/sqlite/journal-sqlite.ts';
import { checkWal } from '../../gateway/src/journal/sqlite/page-scan.ts';
import { scribble } from '../support/damage.ts';
import { useTempDir } from '../support/temp-dir.ts';
import { record } from './journal.contract.ts';

const ROWS = 3000;
/** Every 500th record is too big for one page: SQLite reads it from overflow pages, the page scan cannot. */
const isBig = (seq: number) => seq % 500 === 0;

function newRecord(seq: number): NewRecord {
  const bytes = isBig(seq) ? 6000 : 60 + (seq % 90);
  return {
    ...record(`dev-${seq % 7}`, seq),
    payload: Buffer.from(`record ${seq} `.padEnd(bytes, String.fromCharCode(97 + (seq % 26)))),
  };
}

/** A journal of ROWS records written in commits of 100; the WAL checkpointed into the file unless keepWal. */
function writeJournal(dir: string, { keepWal = false } = {}): SqliteJournal {
  const journal = new SqliteJournal({ dir, durability: 'power' });
  if (keepWal) journal.db.pragma('wal_autocheckpoint = 0');
  for (let seq = 1; seq <= ROWS; seq += 100) journal.commit(Array.from({ length: 100 }, (_, i) => newRecord(seq + i)));
  if (!keepWal) {
    journal.checkpoint();
    journal.close();
  }
  return journal;
}

/**
 * The healed journal accounts for every seq: each is a row identical to what was written or inside exactly
 * one reported gap, and new records continue after the old seqs.
 */
function assertAccountedFor({ journal, healed }: OpenedJournal): { salvaged: number; lost: number } {
  assert.ok(healed, 'the journal was healed');
  const rows = journal.readAfter(0, 1e9, 1e12);
  assert.equal(rows.length, healed.salvaged, 'the report counts the rows salvaged');
  const seen = new Set<number>();
  for (const row of rows) {
    const expected = newRecord(row.seq);
    assert.equal(Buffer.compare(Buffer.from(row.payload), expected.payload), 0, `row ${row.seq} is intact`);
    assert.equal(row.deviceId, expected.deviceId);
    assert.equal(row.gatewayTimeMs, expected.gatewayTimeMs);
    seen.add(row.seq);
  }
  const gaps = journal.gaps();
  assert.deepEqual(gaps, healed.gaps);
  for (const gap of gaps) {
    assert.equal(gap.reason, 'journal-damaged');
    assert.equal(gap.count, gap.to - gap.from + 1);
    for (let seq = gap.from; seq <= gap.to; seq++) {
      assert.ok(!seen.has(seq), `seq ${seq} is both a row and in a gap`);
      seen.add(seq);
    }
  }
  const lastSeq = journal.lastSeq;
  assert.ok(lastSeq >= ROWS, 'seqs go on after the old ones');
  for (let seq = 1; seq <= lastSeq; seq++) assert.ok(seen.has(seq), `seq ${seq} is neither salvaged nor reported`);
  assert.equal(journal.commit([newRecord(lastSeq + 1)]).firstSeq, lastSeq + 1);
  assert.equal(findDamage(journal.file), undefined, 'the fresh journal is sound');
  assert.ok(existsSync(healed.movedTo), 'the damaged file is kept aside');
  return { salvaged: healed.salvaged, lost: healed.lost };
}

describe('journal healing', function () {
  this.timeout(30_000);
  const dir = useTempDir();
  let opened: OpenedJournal | undefined;
  afterEach(() => opened?.journal.close());
  const file = () => join(dir.path, JOURNAL_FILE);

  it('heal - a sound journal opens as it is, with nothing moved', () => {
    writeJournal(dir.path);
    opened = openJournal({ dir: dir.path, durability: 'power' });
    assert.equal(opened.healed, undefined);
    assert.equal(opened.journal.lastSeq, ROWS);
    assert.deepEqual(
      readdirSync(dir.path).filter((f) => f.includes('damaged')),
      [],
    );
  });

  it('heal - a truncated file: the rows before the cut are salvaged, the rest reported as a gap', () => {
    writeJournal(dir.path);
    truncateSync(file(), Math.floor(statSync(file()).size * 0.6));
    opened = openJournal({ dir: dir.path, durability: 'power' });
    assert.match(opened.healed!.damage, /quick_check|cannot read/);
    const { salvaged, lost } = assertAccountedFor(opened);
    assert.ok(salvaged > ROWS * 0.4, `${salvaged} salvaged`);
    assert.ok(lost >= ROWS - salvaged);
  });

  it('heal - flipped bytes in the middle: everything around them is salvaged, exactly the rest reported', () => {
    writeJournal(dir.path);
    const pageSize = 4096;
    const pages = statSync(file()).size / pageSize;
    // Whole page headers and cell pointers: SQLite keeps no checksums, so bytes flipped inside a payload would
    // go unnoticed by SQLite and by salvage alike; what can be noticed is a page that no longer parses.
    for (const at of [0.3, 0.5, 0.7]) scribble(file(), Math.floor(pages * at) * pageSize, 1500);
    opened = openJournal({ dir: dir.path, durability: 'power' });
    const { salvaged, lost } = assertAccountedFor(opened);
    assert.ok(salvaged > ROWS * 0.9, `${salvaged} salvaged`);
    assert.ok(lost > 0 && lost < ROWS * 0.1, `${lost} lost`);
  });

  it('heal - a destroyed header: SQLite cannot open it, the rows are read from the raw pages', () => {
    writeJournal(dir.path);
    scribble(file(), 0, 100);
    opened = openJournal({ dir: dir.path, durability: 'power' });
    assert.match(opened.healed!.damage, /SQLite header/);
    assertAccountedFor(opened);
    // Only the records spilling to overflow pages cannot be read without SQLite. The meta row is unreadable
    // too: the last seq comes from the seq lease, exact after a clean close.
    const gaps = opened.journal.gaps();
    assert.deepEqual(
      gaps.map((g) => [g.from, g.to]),
      [
        [500, 500],
        [1000, 1000],
        [1500, 1500],
        [2000, 2000],
        [2500, 2500],
        [3000, 3000],
      ],
    );
  });

  it('heal - after a crash the seq lease, ahead of the last seq, keeps seqs from being reused when the meta row is lost', () => {
    const crashed = crashedCopy(dir.path);
    scribble(join(crashed, JOURNAL_FILE), 0, 100);
    truncateSync(join(crashed, `${JOURNAL_FILE}-wal`), 0);
    opened = openJournal({ dir: crashed, durability: 'power' });
    assert.ok(opened.healed);
    assert.ok(opened.journal.lastSeq > ROWS, `last seq ${opened.journal.lastSeq}: at the lease, past every seq given out`);
    assert.equal(opened.journal.gaps().at(-1)!.to, opened.journal.lastSeq, 'the seqs up to the lease are reported');
  });

  it('heal - a WAL with a broken frame in the middle: the frames after it are checked and read from the raw pages', () => {
    const crashed = crashedCopy(dir.path);
    const wal = join(crashed, `${JOURNAL_FILE}-wal`);
    const before = checkWal(wal)!;
    assert.equal(before.damage, undefined);
    const frameBytes = 24 + before.pageSize;
    scribble(wal, 32 + Math.floor(before.frames / 2) * frameBytes + 24 + 300, 200);
    assert.match(checkWal(wal)!.damage!, /damaged/);
    opened = openJournal({ dir: crashed, durability: 'power' });
    assert.match(opened.healed!.damage, /WAL frame/);
    const { salvaged } = assertAccountedFor(opened);
    assert.ok(salvaged > ROWS * 0.95, `${salvaged} salvaged`);
  });

  it('heal - a torn WAL tail is what SQLite recovers from by itself: not damage', () => {
    const crashed = crashedCopy(dir.path);
    const wal = join(crashed, `${JOURNAL_FILE}-wal`);
    truncateSync(wal, statSync(wal).size - 1000);
    assert.equal(findDamage(join(crashed, JOURNAL_FILE)), undefined);
    opened = openJournal({ dir: crashed, durability: 'power' });
    assert.equal(opened.healed, undefined);
    assert.ok(opened.journal.lastSeq >= ROWS - 100, 'only the torn last commit is missing');
  });

  it('heal - a file that is not a database at all is moved aside and a fresh journal starts', () => {
    writeFileSync(file(), 'these are not the bytes you are looking for\n'.repeat(200));
    opened = openJournal({ dir: dir.path, durability: 'power' });
    assert.match(opened.healed!.damage, /SQLite header/);
    assert.equal(opened.healed!.salvaged, 0);
    assert.deepEqual(opened.journal.gaps(), []);
    assert.equal(opened.journal.lastSeq, 0);
    assert.match(readFileSync(opened.healed!.movedTo, 'utf8'), /not the bytes/);
  });

  it('heal - subtracting ranges', () => {
    assert.deepEqual(
      subtract(
        [{ from: 1, to: 10 }],
        [
          { from: 3, to: 4 },
          { from: 8, to: 12 },
        ],
      ),
      [
        { from: 1, to: 2 },
        { from: 5, to: 7 },
      ],
    );
    assert.deepEqual(subtract([{ from: 5, to: 6 }], [{ from: 1, to: 9 }]), []);
  });
});

/**
 * What a crash leaves: a journal of ROWS records written in `dir` and copied, with its WAL and seq lease, to
 * `dir`/crashed while it is still open (nothing checkpointed, the lease ahead of the last seq). Returns the copy.
 */
function crashedCopy(dir: string): string {
  const journal = writeJournal(dir, { keepWal: true });
  const crashed = join(dir, 'crashed');
  mkdirSync(crashed);
  for (const name of [JOURNAL_FILE, `${JOURNAL_FILE}-wal`, 'journal.seq-lease'])
    copyFileSync(join(dir, name), join(crashed, name));
  journal.close();
  return crashed;
}
