import { ConfigError, loadConfig } from '../config';
import { createBroker } from './broker';

async function main(): Promise<void> {
  const config = loadConfig(process.env, (msg) => console.warn(`[config] ${msg}`));
  const broker = createBroker(config);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    broker.logger.info(`${signal} received, stopping gracefully`);
    await broker.stop().catch((err) => broker.logger.error('Stop failed', err));
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
  await broker.start();
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    console.error(err.message);
  } else {
    console.error('Start failed:', err instanceof Error ? err.message : err);
  }
  process.exit(1);
});
