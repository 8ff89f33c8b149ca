import type { IncomingMessage, ServerResponse } from 'node:http';
import { concat, distinctUntilChanged, of, ReplaySubject, takeWhile, type Subscription } from 'rxjs';
import { isTerminal } from '../../machines/purchase.machine';
import type { Runtime } from '../runtime';
import type { ResultRecord } from './results';
import { messageIdRule } from '../validation';
import { openEventStream } from '../sse';

const HEARTBEAT_MS = 15_000;
const MAX_STREAM_MS = 10 * 60_000;

function writeEnvelope(res: ServerResponse, status: number, code: number, message: string): void {
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify({ code, message, data: null }));
}

/**
 * Server-Sent Events for one message: the current status at once, then one `status` event per
 * change, and the stream closes after the terminal one. Another user's message (`owner` signed in)
 * answers 6008 like a missing one.
 */
export function streamResult(rt: Runtime, req: IncomingMessage, res: ServerResponse, owner?: number): void {
  const messageId = new URL(req.url ?? '', 'http://x').searchParams.get('messageId') ?? '';
  if (messageId.length > messageIdRule.max || !messageIdRule.pattern.test(messageId)) {
    return writeEnvelope(res, 400, 1001, "The 'messageId' field is missing or malformed.");
  }
  const gateway = rt.gateway;
  if (!gateway) return writeEnvelope(res, 503, 5030, 'The purchase service is not running on this gateway');

  let subscription: Subscription | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  let timeout: NodeJS.Timeout | undefined;
  // Buffer transitions from now on, so none is lost while the current status is read.
  const updates = new ReplaySubject<ResultRecord>();
  const watching = gateway.hub.watch(messageId).subscribe(updates);
  const close = () => {
    watching.unsubscribe();
    subscription?.unsubscribe();
    clearInterval(heartbeat);
    clearTimeout(timeout);
    if (!res.writableEnded) res.end();
  };
  req.on('close', close);

  gateway
    .result(messageId, 0, owner)
    .then((first) => {
      openEventStream(res);
      subscription = concat(of(first), updates)
        .pipe(
          distinctUntilChanged((a: ResultRecord, b: ResultRecord) => a.status === b.status),
          takeWhile((r) => !isTerminal(r.status), true),
        )
        .subscribe({
          next: (record) =>
            res.write(`event: status\nid: ${record.status}\ndata: ${JSON.stringify(record)}\n\n`),
          complete: close,
        });
      heartbeat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
      timeout = setTimeout(close, MAX_STREAM_MS);
    })
    .catch((err: { data?: { appCode?: number } }) => {
      if (err?.data?.appCode === 6008) writeEnvelope(res, 404, 6008, 'No such message');
      else writeEnvelope(res, 503, 5030, 'A dependency is unavailable, try again shortly');
    });
}
