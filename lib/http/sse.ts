import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendError } from './envelope';
import type { ErrorName } from '../errors';

/**
 * A Server-Sent Events answer that a client may leave at any instant: once it left (or the stream
 * was closed) nothing more is written, closing twice is harmless, and the cleanups run once. No
 * caching or proxy buffering; clients retry after 2 s.
 */
export class EventStream {
  private done = false;
  private readonly cleanups: (() => void)[] = [];

  constructor(
    req: IncomingMessage,
    private readonly res: ServerResponse,
  ) {
    const close = () => this.close();
    // The response's 'close' fires when the client goes away (or the stream ended).
    req.on('close', close);
    res.on('close', close);
    res.on('error', close);
  }

  get closed(): boolean {
    return this.done || this.res.destroyed || this.res.writableEnded;
  }

  onClose(cleanup: () => void): void {
    if (this.done) cleanup();
    else this.cleanups.push(cleanup);
  }

  /** Sends the headers; false when the client is already gone. */
  open(): boolean {
    if (this.closed || this.res.headersSent) return !this.closed;
    this.res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    this.res.write('retry: 2000\n\n');
    return true;
  }

  send(event: string, data: unknown, id?: string): void {
    if (this.closed) return;
    this.res.write(`event: ${event}\n${id ? `id: ${id}\n` : ''}data: ${JSON.stringify(data)}\n\n`);
  }

  comment(text: string): void {
    if (!this.closed) this.res.write(`: ${text}\n\n`);
  }

  /** Answers with an envelope instead of a stream, when the headers are not sent yet; then closes. */
  fail(error: ErrorName, message?: string): void {
    sendError(this.res, error, message);
    this.close();
  }

  close(): void {
    if (this.done) return;
    this.done = true;
    for (const cleanup of this.cleanups.splice(0)) {
      try {
        cleanup();
      } catch {
        // a cleanup must not stop the others
      }
    }
    if (!this.res.writableEnded && !this.res.destroyed) this.res.end();
  }
}
