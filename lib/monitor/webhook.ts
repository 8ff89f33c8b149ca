import type { Alert } from './types';

/** The JSON body POSTed to ALERT_WEBHOOK_URL for each raise and resolution. */
export interface WebhookPayload {
  event: 'alert.raised' | 'alert.resolved';
  alert: Alert;
  namespace: string;
  nodeID: string;
  sentAt: string;
}

export function webhookPayload(
  alert: Alert,
  namespace: string,
  nodeID: string,
  now = new Date(),
): WebhookPayload {
  return {
    event: alert.resolvedAt ? 'alert.resolved' : 'alert.raised',
    alert,
    namespace,
    nodeID,
    sentAt: now.toISOString(),
  };
}

/**
 * POSTs the payload with a timeout. Never throws: an alert must not take the monitor down with
 * the receiver; failures are logged and the result says whether the receiver accepted it.
 */
export async function postWebhook(
  url: string,
  payload: WebhookPayload,
  log: { warn(...args: unknown[]): void },
  timeoutMs = 3000,
): Promise<boolean> {
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(payload),
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.arrayBuffer().catch(() => undefined); // release the connection
    if (!res.ok) log.warn(`Alert webhook answered HTTP ${res.status}`, payload.alert.id);
    return res.ok;
  } catch (err) {
    log.warn('Alert webhook failed', payload.alert.id, err instanceof Error ? err.message : String(err));
    return false;
  }
}
