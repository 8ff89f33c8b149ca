import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServiceBroker } from 'moleculer';
import {
  catchError,
  concat,
  EMPTY,
  exhaustMap,
  from,
  map,
  merge,
  mergeMap,
  of,
  timer,
  type Observable,
  type Subscription,
} from 'rxjs';
import type { Monitor, MonitorFeed } from './monitor';
import type { Alert, MonitorSnapshot } from './types';
import { sendError } from '../http/envelope';
import { EventStream } from '../http/sse';

type StreamEvent = { event: 'snapshot'; data: MonitorSnapshot } | { event: 'alert'; data: Alert };

// EventSource reconnects on its own; a bounded stream lets a long-open page pick up a redeploy.
const MAX_STREAM_MS = 60 * 60_000;

let openStreams = 0;

/** Monitor streams currently open in this process (a closed client must not leave one behind). */
export const openMonitorStreams = (): number => openStreams;

function localEvents(monitor: Monitor): Observable<StreamEvent> {
  const latest = monitor.latest;
  return merge(
    concat(latest ? of(latest) : EMPTY, monitor.snapshots$).pipe(
      map((data): StreamEvent => ({ event: 'snapshot', data })),
    ),
    monitor.alertEvents$.pipe(map((data): StreamEvent => ({ event: 'alert', data }))),
  );
}

/** A gateway without a local monitor polls `monitor.feed` on the node that has one. */
function remoteEvents(broker: ServiceBroker, intervalMs: number): Observable<StreamEvent> {
  let after: number | undefined;
  let lastAt = '';
  return timer(0, intervalMs).pipe(
    exhaustMap(() =>
      from(
        broker.call<MonitorFeed, { after?: number }>('monitor.feed', after === undefined ? {} : { after }, {
          timeout: Math.max(2000, intervalMs),
        }),
      ).pipe(catchError(() => EMPTY)),
    ),
    mergeMap((feed) => {
      after = feed.seq;
      const alerts = feed.changes.map((data): StreamEvent => ({ event: 'alert', data }));
      const fresh = feed.snapshot.at !== lastAt;
      lastAt = feed.snapshot.at;
      return fresh ? [...alerts, { event: 'snapshot', data: feed.snapshot } as StreamEvent] : alerts;
    }),
  );
}

/**
 * Server-Sent Events for the dashboard: `event: snapshot` every interval and `event: alert` on each
 * raise or resolution. Closes with the client, or after an hour (the browser reconnects).
 */
export function streamMonitor(
  broker: ServiceBroker,
  monitor: Monitor | undefined,
  intervalMs: number,
  req: IncomingMessage,
  res: ServerResponse,
): void {
  const remote =
    !monitor && broker.registry.getServiceList({ onlyAvailable: true }).some((s) => s.name === 'monitor');
  if (!monitor && !remote) return sendError(res, 'UNAVAILABLE', 'The monitor service is not running');
  const events$ = monitor ? localEvents(monitor) : remoteEvents(broker, intervalMs);
  const stream = new EventStream(req, res);
  if (!stream.open()) return;
  openStreams++;
  const limit = setTimeout(() => stream.close(), MAX_STREAM_MS);
  const subscription: Subscription = events$.subscribe({
    next: ({ event, data }) => stream.send(event, data),
    complete: () => stream.close(), // the monitor stopped
    error: () => stream.close(),
  });
  stream.onClose(() => {
    openStreams--;
    subscription.unsubscribe();
    clearTimeout(limit);
  });
}
