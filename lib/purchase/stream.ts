import type { IncomingMessage, ServerResponse } from 'node:http';
import { concat, distinctUntilChanged, of, ReplaySubject, takeWhile } from 'rxjs';
import { isTerminal } from '../../machines/purchase.machine';
import type { PurchaseGateway } from './gateway';
import type { ResultRecord } from './results';
import { messageIdRule } from '../validation';
import { appCodeOf, ERRORS } from '../errors';
import { sendError } from '../http/envelope';
import { EventStream } from '../http/sse';

const HEARTBEAT_MS = 15_000;
const MAX_STREAM_MS = 10 * 60_000;

/**
 * Server-Sent Events for one message: the current status at once, then one `status` event per
 * change, and the stream closes after the terminal one. The client may leave at any moment (before
 * the first read has answered, too): nothing is written after it left. Another user's message
 * (`owner` signed in) answers 6008 like a missing one.
 */
export function streamResult(
  gateway: PurchaseGateway | undefined,
  req: IncomingMessage,
  res: ServerResponse,
  owner?: number,
): void {
  const messageId = new URL(req.url ?? '', 'http://x').searchParams.get('messageId') ?? '';
  if (messageId.length > messageIdRule.max || !messageIdRule.pattern.test(messageId)) {
    return sendError(res, 'INVALID_PARAM', "The 'messageId' field is missing or malformed.");
  }
  if (!gateway) return sendError(res, 'UNAVAILABLE', 'The purchase service is not running on this gateway');

  const stream = new EventStream(req, res);
  // Buffer transitions from now on, so none is lost while the current status is read.
  const updates = new ReplaySubject<ResultRecord>();
  const watching = gateway.hub.watch(messageId).subscribe(updates);
  stream.onClose(() => watching.unsubscribe());

  gateway.result(messageId, 0, owner).then(
    (first) => {
      if (!stream.open()) return;
      const subscription = concat(of(first), updates)
        .pipe(
          distinctUntilChanged((a: ResultRecord, b: ResultRecord) => a.status === b.status),
          takeWhile((r) => !isTerminal(r.status), true),
        )
        .subscribe({
          next: (record) => stream.send('status', record, record.status),
          complete: () => stream.close(),
        });
      const heartbeat = setInterval(() => stream.comment('keep-alive'), HEARTBEAT_MS);
      const timeout = setTimeout(() => stream.close(), MAX_STREAM_MS);
      stream.onClose(() => {
        subscription.unsubscribe();
        clearInterval(heartbeat);
        clearTimeout(timeout);
      });
    },
    (err: unknown) => {
      if (appCodeOf(err) === ERRORS.NOT_FOUND.code) stream.fail('NOT_FOUND', 'No such message');
      else stream.fail('UNAVAILABLE');
    },
  );
}
