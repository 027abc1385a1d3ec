/**
 * Records the backend rejected as invalid (Ack.rejected): sent again, at most maxAttempts times in all, then
 * dead-lettered so that they do not block anything. Attempts are counted per seq for the life of the uplink,
 * across sessions.
 */
export class Rejections {
  private readonly attempts = new Map<number, number>();

  constructor(private readonly maxAttempts: number) {}

  /** The backend rejected `seq` once more: send it again, or give up on it? (No dead-letter store: give up.) */
  rejected(seq: number, canDeadLetter: boolean): 'resend' | 'dead-letter' {
    const attempts = (this.attempts.get(seq) ?? 1) + 1;
    if (attempts > this.maxAttempts || !canDeadLetter) {
      this.attempts.delete(seq);
      return 'dead-letter';
    }
    this.attempts.set(seq, attempts);
    return 'resend';
  }
}
