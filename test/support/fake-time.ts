import FakeTimers from '@sinonjs/fake-timers';
import type { Clock, TimerHandle, Timers } from '@fleetgate/core';

export interface FakeTime {
  clock: Clock;
  timers: Timers;
  /** Moves time forward, running the timers that fall due. */
  tick(ms: number): void;
}

/** @sinonjs/fake-timers behind fleetgate's Clock and Timers interfaces; nothing global is replaced. */
export function fakeTime(startMs = 1_000_000): FakeTime {
  const fake = FakeTimers.createClock(startMs);
  type Handle = TimerHandle & { id: FakeTimers.TimerId };
  return {
    clock: { now: () => fake.now },
    timers: {
      setTimeout: (callback, ms): Handle => ({ id: fake.setTimeout(callback, ms) }),
      clearTimeout: (handle) => fake.clearTimeout((handle as Handle).id),
    },
    tick: (ms) => void fake.tick(ms),
  };
}
