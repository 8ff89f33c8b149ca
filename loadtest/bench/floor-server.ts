/**
 * The "submit floor": the least work any accepted V2 submit needs, on the echo's gateway. It
 * validates the body with the service's rules, checks the sale calendar and the verify hash, makes
 * the service's one-round-trip Redis admission (batched per event-loop turn, as the gateway does)
 * and one JetStream publish through the service's publisher, awaiting its acknowledgement, and takes
 * the admission out of the outbox. Nothing else runs beside it: no workers and no database, no
 * result events, no metrics, no queue positions. The full service does all this and makes the
 * orders too, on the same machine: the floor's ratio to the echo bounds what the submit scenario
 * can reach through the same gateway path.
 * It uses its own NAMESPACE (keys and streams); the bench removes them at the end.
 */
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { Context } from 'moleculer';
import type { Config } from '../../config';
import { appError } from '../../lib/errors';
import { sendEnvelope, success } from '../../lib/http/envelope';
import { isEmpty, type Check, type Next, type Req } from '../../lib/http/request';
import { checkRequest, type PurchaseRequest } from '../../lib/purchase/checks';
import { AdmissionBatch } from '../../lib/purchase/admit-batch';
import { refusal } from '../../lib/purchase/reservations';
import { OutboxAcks } from '../../lib/purchase/outbox';
import { Runtime } from '../../lib/runtime';
import { saleDates } from '../../lib/sale/calendar';
import { keys } from '../../lib/store/keys';
import { purchaseParams } from '../../lib/validation';
import { runBaseline } from './baseline-gateway';

/** Stock for every sale day: the floor never runs out. */
const FLOOR_STOCK = 1_000_000_000;
const FLOOR_PATH = '/api/floor';

interface Door {
  runtime: Runtime;
  admissions: AdmissionBatch;
  acks: OutboxAcks;
}

async function submit({ runtime, admissions, acks }: Door, req: PurchaseRequest) {
  const { config, admitter } = runtime;
  const now = new Date();
  checkRequest(config, runtime.calendar, req, now);
  const messageId = randomUUID();
  const admission = await admissions.reserve(req, messageId, now);
  if (admission.outcome !== 'OK') throw refusal(admission);
  const queue = await runtime.queue('floor');
  const queuedAt = now.toISOString();
  await queue.publish({ messageId, userId: req.userId, date: req.date, queuedAt }).catch(() => {
    throw appError('UNAVAILABLE', 'The purchase queue is unavailable, try again');
  });
  acks.remove({ date: req.date, messageId, admitter });
  return {
    messageId,
    status: 'PENDING',
    pollIntervalMs: config.poll.minMs,
    resultUrl: `/api/tickets/v2/purchase/result?messageId=${messageId}`,
  };
}

/** Made with the services (it needs the configuration); the route, made after them, uses it. */
let door: Door | undefined;

runBaseline({
  name: 'floor',
  action: 'floor.submit',
  services: (config: Config) => {
    const runtime = new Runtime(config);
    const made: Door = (door = {
      runtime,
      admissions: new AdmissionBatch(runtime.redis, { ...config, admitter: runtime.admitter }),
      acks: new OutboxAcks(runtime.redis),
    });
    return [
      {
        name: 'floor',
        actions: {
          submit: {
            params: purchaseParams,
            handler: (ctx: Context<PurchaseRequest>) => submit(made, ctx.params),
          },
        },
        async started() {
          await runtime.queue('floor');
          const stock = saleDates(runtime.calendar).flatMap((date) => [keys.stock(date), FLOOR_STOCK]);
          await runtime.redis.mset(keys.ready, new Date().toISOString(), ...stock);
        },
        stopped: () => runtime.close(),
      },
    ];
  },
  // The service takes a well-formed submit before moleculer-web and answers it without an action
  // call (lib/http/hot-routes.ts, local-answers.ts); so does the floor. Anything else goes to the
  // action, as there.
  answer: (broker) => {
    const made = door;
    if (!made) throw new Error('The floor route is made after the floor service');
    const valid = broker.validator?.compile(purchaseParams) as Check;
    return (req: Req, res: ServerResponse, next: Next) => {
      const body = req.body as PurchaseRequest;
      if (req.method !== 'POST' || req.parsedUrl !== FLOOR_PATH || !isEmpty(req.query)) return next();
      if (valid(body) !== true) return next();
      submit(made, body)
        .then((answer) => sendEnvelope(res, 200, success(answer)))
        .catch(next);
    };
  },
});
