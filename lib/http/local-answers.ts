import type { ServerResponse } from 'node:http';
import type { PurchaseRequest } from '../purchase/checks';
import type { PurchaseGateway } from '../purchase/gateway';
import type { ResultRecord } from '../purchase/results';
import { isRefusal, type Refusal } from '../errors';
import { bindUser } from './access';
import { sendEnvelope, sendJson, success } from './envelope';
import { isEmpty, V2_RESULT, V2_SUBMIT, type Check, type Middleware, type Next, type Req } from './request';

/** The purchase gateway of this node, and the actions' own rules to check requests by. */
export interface LocalAnswerInputs {
  gateway: Pick<PurchaseGateway, 'refuseLocally' | 'admit' | 'terminalResult'>;
  validPurchase: Check;
  validResult: Check;
}

/** Success envelopes of terminal results, serialized once per record (records are immutable). */
const resultAnswers = new WeakMap<ResultRecord, string>();

const sendRefusal = (res: ServerResponse, refusal: Refusal): void =>
  sendEnvelope(res, refusal.http, { code: refusal.code, message: refusal.message, data: null });

/**
 * The hot routes answered by this node's purchase gateway directly (the last step of the route's
 * chain, also run by hot-routes.ts before moleculer-web), with the same envelope and without an
 * action call: a well-formed V2 submit — refused
 * from memory (sold out, paused, outside the sale: the sold-out storm) or admitted by the same
 * gateway code the action runs — and a well-formed poll of a terminal result it holds. Moleculer's
 * action pipeline (context, tracking, per-action metrics) cost the gateway about a fifth of a
 * submit. Anything else, including whatever the action's rules would refuse, goes on to its action.
 * `local` answers undefined on a node without the purchase service.
 */
export function answerLocally(local: () => LocalAnswerInputs | undefined): Middleware {
  return (req: Req, res: ServerResponse, next: Next): void => {
    const inputs = local();
    if (!inputs) return next();
    const { gateway, validPurchase, validResult } = inputs;
    if (req.method === 'POST' && req.parsedUrl === V2_SUBMIT) {
      const body = req.body as PurchaseRequest | null | undefined;
      if (typeof body !== 'object' || body === null) return next();
      if (req.$user !== undefined) {
        try {
          bindUser(body as unknown as Record<string, unknown>, req.$user, true);
        } catch (err) {
          return next(err);
        }
      }
      if (!isEmpty(req.query) || validPurchase(body) !== true) return next();
      const refusal = gateway.refuseLocally(body);
      if (refusal) return sendRefusal(res, refusal);
      gateway
        .admit(body)
        .then((answer) =>
          isRefusal(answer) ? sendRefusal(res, answer) : sendEnvelope(res, 200, success(answer)),
        )
        .catch(next);
      return;
    }
    if (req.method === 'GET' && req.parsedUrl === V2_RESULT) {
      const query = req.query as { messageId?: string } | undefined;
      // A body (moleculer-web merges or refuses it) is for the action's rules to judge.
      const { body } = req;
      if (body !== undefined && !(typeof body === 'object' && body !== null && isEmpty(body))) return next();
      if (validResult(query) !== true || !query?.messageId) return next();
      const record = gateway.terminalResult(query.messageId);
      // Another user's message: the action answers it like a missing one.
      if (!record || (req.$user !== undefined && record.userId !== req.$user)) return next();
      let answer = resultAnswers.get(record);
      if (answer === undefined) {
        answer = JSON.stringify(success(record));
        resultAnswers.set(record, answer);
      }
      return sendJson(res, 200, answer);
    }
    next();
  };
}
