/**
 * The "echo ceiling" of SPEC §6: a moleculer-web gateway answering a constant JSON from a local
 * action, in the SPEC envelope. Same configuration loading, broker options (logger, validator,
 * metrics), body parser and envelope as the service's gateway; no transporter, no I/O.
 * Run like the service: `node dist/loadtest/bench/echo-server.js` with the bench's environment.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ServiceBroker } from 'moleculer';
import ApiGateway from 'moleculer-web';
import { loadConfig } from '../../config';
import { brokerOptions } from '../../moleculer.config';
import { envelope, gatewayBase } from '../../services/api.service';

/** About the size and shape of a V2 submit answer. */
const CONSTANT = {
  messageId: '00000000-0000-4000-8000-000000000000',
  status: 'PENDING',
  pollIntervalMs: 200,
  resultUrl: '/api/tickets/v2/purchase/result?messageId=00000000-0000-4000-8000-000000000000',
};

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const broker = new ServiceBroker({
    ...brokerOptions(config, `${config.namespace}-echo-${process.pid}`),
    transporter: undefined,
  });
  broker.createService({
    name: 'echo',
    actions: {
      constant: {
        handler: () => CONSTANT,
      },
    },
  });
  broker.createService({
    name: 'api',
    mixins: [ApiGateway],
    settings: {
      ...gatewayBase(config),
      routes: [
        {
          path: '/api',
          mappingPolicy: 'restrict',
          bodyParsers: { json: { strict: true, limit: config.http.bodyLimit }, urlencoded: false },
          logging: false,
          aliases: { 'GET echo': 'echo.constant', 'POST echo': 'echo.constant' },
          onAfterCall: envelope,
        },
        {
          path: '/',
          mappingPolicy: 'restrict',
          bodyParsers: false,
          logging: false,
          aliases: { 'GET health': 'echo.constant' },
          onAfterCall: envelope,
        },
      ],
      onError(_req: IncomingMessage, res: ServerResponse, err: Error & { code?: number }) {
        const status = typeof err.code === 'number' && err.code >= 400 && err.code < 600 ? err.code : 500;
        const payload = JSON.stringify({
          code: status === 404 ? 404 : 5000,
          message: err.message,
          data: null,
        });
        res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8' });
        res.end(payload);
      },
    },
  });
  const stop = () => {
    broker
      .stop()
      .catch(() => undefined)
      .finally(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  await broker.start();
}

main().catch((err: unknown) => {
  console.error('Echo server failed:', err instanceof Error ? err.message : err);
  process.exit(1);
});
