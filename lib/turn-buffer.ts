/**
 * Collects what is added during one turn of the event loop and hands it over as one batch at the
 * turn's end (setImmediate, after the I/O callbacks of the turn). One Redis script call or one NATS
 * socket write then serves many requests: NATS flushes on a microtask, so publishes issued from
 * scattered promise callbacks would each cost a write of their own.
 */
export class TurnBuffer<T> {
  private items: T[] = [];

  constructor(
    private readonly flush: (items: T[]) => void,
    private readonly maxBatch = Infinity,
  ) {}

  add(item: T): void {
    if (this.items.length === 0) setImmediate(() => this.drain());
    this.items.push(item);
  }

  private drain(): void {
    const all = this.items;
    this.items = [];
    for (let i = 0; i < all.length; i += this.maxBatch) this.flush(all.slice(i, i + this.maxBatch));
  }
}
