#!/usr/bin/env node
import { parseConfig } from './config.js';
import { Controller } from './controller.js';

const controller = new Controller(await parseConfig(process.argv));
let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  controller.log.info({ signal }, 'shutting down: resigning leadership');
  const force = setTimeout(() => process.exit(1), 5000);
  force.unref();
  try {
    await controller.stop();
  } finally {
    process.exit(0);
  }
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
controller.start().catch((err: unknown) => {
  controller.log.fatal({ err }, 'controller failed to start');
  process.exit(1);
});
