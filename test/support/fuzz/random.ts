/** A seeded PRNG (mulberry32): a fuzz run that fails can be replayed with the seed it printed. */
export class Random {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  int(maxExclusive: number): number {
    return Math.floor(this.next() * maxExclusive);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  bytes(length: number): Buffer {
    const out = Buffer.alloc(length);
    for (let i = 0; i < length; i++) out[i] = this.int(256);
    return out;
  }

  /** One of the mutations fuzzers apply to a valid encoding. */
  mutate(input: Buffer): Buffer {
    const buf = Buffer.from(input);
    switch (this.int(6)) {
      case 0: // flip a few bits
        for (let n = 1 + this.int(8); n > 0 && buf.length > 0; n--) buf[this.int(buf.length)]! ^= 1 << this.int(8);
        return buf;
      case 1: // overwrite a run of bytes
        for (let i = this.int(buf.length), end = Math.min(buf.length, i + 1 + this.int(8)); i < end; i++) buf[i] = this.int(256);
        return buf;
      case 2: // truncate
        return buf.subarray(0, this.int(buf.length + 1));
      case 3: {
        // insert random bytes
        const at = this.int(buf.length + 1);
        return Buffer.concat([buf.subarray(0, at), this.bytes(1 + this.int(16)), buf.subarray(at)]);
      }
      case 4: // duplicate a slice
        return Buffer.concat([buf, buf.subarray(this.int(buf.length + 1))]);
      default:
        return this.bytes(1 + this.int(64));
    }
  }
}

/** The seed of this run: $FUZZ_SEED if set (to replay a failure), else a fresh one. */
export function fuzzSeed(): number {
  const env = process.env.FUZZ_SEED;
  return env !== undefined ? Number(env) : Math.floor(Math.random() * 2 ** 31);
}
