import type { Gap, Journal, JournalRecord, UpstreamJournal } from '../journal.ts';

/** One upstream's view (Journal.upstream); `index` undefined: the one upstream, which reads the journal as it is. */
export class UpstreamView implements UpstreamJournal {
  constructor(
    private readonly journal: Journal,
    private readonly index: number | undefined,
  ) {}

  readAfter(afterSeq: number, maxRecords: number, maxBytes: number, throughSeq?: number): JournalRecord[] {
    return this.journal.readAfter(afterSeq, maxRecords, maxBytes, throughSeq, this.index);
  }

  get ackedThrough(): number {
    return this.index === undefined ? this.journal.ackedThrough : this.journal.backlogOf(this.index).ackedThrough;
  }

  get lastSeq(): number {
    return this.journal.lastSeq;
  }

  gaps(): Gap[] {
    return this.journal.gaps(this.index);
  }
}
