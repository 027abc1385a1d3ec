/**
 * The bit each configured upstream has in a row's `pending` (and a gap's): stable across restarts and
 * configuration changes, kept in the table upstreams(name, bit). Route masks count upstreams in configuration
 * order (bit i: the i-th configured upstream); the stored bits are whatever each upstream was given when it
 * first appeared, so a mask is translated before it is stored.
 */
import { ConfigError } from '@fleetgate/core';
import type { SqliteDatabase } from '@fleetgate/core/sqlite';
import { MAX_UPSTREAMS } from '../journal.ts';

export class UpstreamBits {
  /** All of them: a row that waits for every upstream. */
  readonly all: number;
  /** Route mask -> stored bits. */
  private readonly stored = new Map<number, number>();

  /** `bits`: the stored bit of each configured upstream, in configuration order. */
  constructor(private readonly bits: readonly number[]) {
    this.all = bits.reduce((all, bit) => all | bit, 0);
  }

  get count(): number {
    return this.bits.length;
  }

  /** The stored bit of the upstream at `index` in the configuration. */
  of(index: number): number {
    return this.bits[index]!;
  }

  /** The stored `pending` of a route mask (bit i: the i-th configured upstream); a mask naming none is refused. */
  storedMask(mask: number): number {
    let stored = this.stored.get(mask);
    if (stored === undefined) {
      stored = 0;
      for (let i = 0; i < this.bits.length; i++) if (mask & (1 << i)) stored |= this.bits[i]!;
      if (stored === 0) throw new RangeError(`route mask ${mask} names no configured upstream`);
      this.stored.set(mask, stored);
    }
    return stored;
  }

  /** Calls `each(i)` for every configured upstream whose bit is set in `pending`. */
  forEachIn(pending: number, each: (index: number) => void): void {
    for (let i = 0; i < this.bits.length; i++) if ((pending & this.bits[i]!) !== 0) each(i);
  }
}

/**
 * Gives each configured upstream its bit in `pending`, keeping the bits upstreams already had. An upstream no
 * longer configured must leave no row waiting for it unless named in `forget`; rows salvaged without knowing
 * their upstreams (PENDING_UNKNOWN) go to every configured one.
 */
export function registerUpstreams(
  db: SqliteDatabase,
  names: readonly string[],
  forget: readonly string[],
  file: string,
  /** The last close was clean (clean-close.ts): no row waits for unknown upstreams, so none is looked for. */
  closedCleanly = false,
): { bits: UpstreamBits; rowsChanged: boolean } {
  if (names.length === 0 || names.length > MAX_UPSTREAMS)
    throw new RangeError(`${names.length} upstreams: 1 to ${MAX_UPSTREAMS} can be configured`);
  let rowsChanged = false;
  const bits = db.transaction(() => {
    const known = new Map(
      db
        .prepare<[], { name: string; bit: number }>('SELECT name, bit FROM upstreams')
        .all()
        .map((r) => [r.name, r.bit]),
    );
    // The unnamed upstream of an older journal is the first configured one.
    const legacy = known.get('');
    if (legacy !== undefined && !known.has(names[0]!)) {
      db.prepare("UPDATE upstreams SET name = ? WHERE name = ''").run(names[0]!);
      known.delete('');
      known.set(names[0]!, legacy);
    }
    for (const [name, bit] of known) {
      if (names.includes(name)) continue;
      const waiting = db
        .prepare<[number], { n: number }>('SELECT count(*) AS n FROM journal WHERE (pending & ?) != 0')
        .get(bit)!.n;
      if (waiting > 0 && !forget.includes(name)) {
        throw new ConfigError(
          'forget-upstreams',
          `${file} holds ${waiting} rows that upstream "${name || '(the one before upstreams had names)'}" has not acknowledged, and it is no longer configured: ` +
            `configure it again until it has caught up, or name it in forget-upstreams to let those rows go for it`,
        );
      }
      if (db.prepare('UPDATE journal SET pending = pending & ~? WHERE (pending & ?) != 0').run(bit, bit).changes > 0)
        rowsChanged = true;
      db.prepare('UPDATE gaps SET pending = pending & ~? WHERE (pending & ?) != 0').run(bit, bit);
      db.exec('DELETE FROM journal WHERE pending = 0; DELETE FROM gaps WHERE pending = 0');
      db.prepare('DELETE FROM upstreams WHERE name = ?').run(name);
      known.delete(name);
    }
    const used = new Set(known.values());
    const bits = names.map((name) => {
      let bit = known.get(name);
      if (bit === undefined) {
        bit = 1;
        while (used.has(bit)) bit <<= 1;
        used.add(bit);
        db.prepare('INSERT INTO upstreams (name, bit) VALUES (?, ?)').run(name, bit);
      }
      return bit;
    });
    // Rows salvaged from a damaged journal wait for every upstream. After a clean close there are none (the open
    // after the salvage gave them their bits), and looking would read every row.
    if (!closedCleanly) {
      const all = bits.reduce((a, b) => a | b, 0);
      if (db.prepare('UPDATE journal SET pending = ? WHERE pending < 0').run(all).changes > 0) rowsChanged = true;
      db.prepare('UPDATE gaps SET pending = ? WHERE pending < 0').run(all);
    }
    return bits;
  })();
  return { bits: new UpstreamBits(bits), rowsChanged };
}
