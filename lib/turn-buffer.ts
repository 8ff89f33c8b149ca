/**
 * Collects what is added during one turn of the event loop and hands it over as one batch at the
 * turn's end (setImmediate, after the I/O callbacks of the turn). One Redis script call or one NATS
 * socket write then serves many requests: NATS flushes on a microtask, so publishes issued from
 * scattered promise callbacks would each cost a write of their own.
 * With `delayMs` the batch is handed over that long after its first item instead: a window that
 * opens only when there is something to batch. (RxJS's `bufferTime` reopens its window forever,
 * a timer every few milliseconds: it was a third of an idle worker's CPU.)
 */
export class TurnBuffer<T> {
  private items: T[] = [];

  constructor(
    private readonly flush: (items: T[]) => void,
    private readonly maxBatch = Infinity,
    private readonly delayMs = 0,
  ) {}

  add(item: T): void {
    if (this.items.length === 0) {
      if (this.delayMs > 0) setTimeout(() => this.drain(), this.delayMs);
      else setImmediate(() => this.drain());
    }
    this.items.push(item);
  }

  private drain(): void {
    const all = this.items;
    this.items = [];
    for (let i = 0; i < all.length; i += this.maxBatch) this.flush(all.slice(i, i + this.maxBatch));
  }
}
