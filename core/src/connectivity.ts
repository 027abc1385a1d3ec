import { EventEmitter, once } from 'node:events';

/** The life of a link, named as grpc-js names its channel states. */
export enum ConnectivityState {
  IDLE = 'idle',
  CONNECTING = 'connecting',
  READY = 'ready',
  TRANSIENT_FAILURE = 'transient_failure',
  SHUTDOWN = 'shutdown',
}

export interface StateChange {
  state: ConnectivityState;
  previous: ConnectivityState;
  /** Why, for a failure: the error's message. */
  reason?: string;
}

/**
 * Holds a link's state and announces every change as a 'state' event (a StateChange), so that logs, stats and
 * tests can follow it: `await tracker.waitFor(ConnectivityState.READY)`.
 */
export class ConnectivityTracker extends EventEmitter<{ state: [StateChange] }> {
  private current = ConnectivityState.IDLE;

  get state(): ConnectivityState {
    return this.current;
  }

  set(state: ConnectivityState, reason?: string): void {
    if (state === this.current) return;
    const previous = this.current;
    this.current = state;
    this.emit('state', reason === undefined ? { state, previous } : { state, previous, reason });
  }

  /** Resolves when the state is (or becomes) `state`; rejects on `signal` abort. */
  async waitFor(state: ConnectivityState, signal?: AbortSignal): Promise<void> {
    while (this.current !== state) {
      await once(this, 'state', signal ? { signal } : {});
    }
  }
}
