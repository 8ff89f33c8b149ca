/**
 * The "echo ceiling" of SPEC §6: a moleculer-web gateway answering a constant JSON from a local
 * action, in the SPEC envelope; no I/O. Run: `node dist/loadtest/bench/echo-server.js` with the
 * bench's environment.
 */
import { runBaseline } from './baseline-gateway';

/** About the size and shape of a V2 submit answer. */
const CONSTANT = {
  messageId: '00000000-0000-4000-8000-000000000000',
  status: 'PENDING',
  pollIntervalMs: 200,
  resultUrl: '/api/tickets/v2/purchase/result?messageId=00000000-0000-4000-8000-000000000000',
};

runBaseline({
  name: 'echo',
  action: 'echo.constant',
  services: () => [{ name: 'echo', actions: { constant: { handler: () => CONSTANT } } }],
});
