// Results connection: takes the broker options and publish options; gives the Publisher the predictor hands each
// committed batch's results to, on an MQTT connection of its own (client id `<mqtt.clientId>-results` unless
// publish.clientId names it), and the steps of a stop.
//
// Why a connection of its own: on the readings' connection, during a backlog drain the results and the broker's
// acknowledgements of them queued behind thousands of incoming readings (one socket, read in order), and every
// result write waited for the readings' group commit to uncork the socket. Measured (npm run bench, QoS 1
// backlog): the last result came 1.5 times as late as the last commit; on its own connection 1.0-1.2 times.
// A results *thread* was measured too and was worse on a 2-core line PC (48 % of the relay ceiling against
// 69 %, and 14,000 results behind at 10,000 msg/s): the thread competes with the broker and the main thread for
// the two cores, and the hand-over costs more than the publish it moves.

import type { Logger } from './log.js';
import { corkClient, createMqttClient, type MqttOptions } from './ingest/mqtt.js';
import { createOutgoing, createSender, type Publisher, type PublishOptions } from './publish.js';
import { createRateLimitedLog } from './log.js';

export interface Results extends Publisher {
  /** Ends the results connection (after `settled`, at a stop). */
  close(): Promise<void>;
  /** Drops the connection at once. */
  destroy(): void;
  /** Whether the results connection is up, and its client id. */
  readonly connected: boolean;
  readonly clientId: string;
}

/** The results connection's client id: publish.clientId, or the readings connection's with "-results". */
export function resultsClientId(options: Pick<PublishOptions, 'clientId'>, mqttClientId: string): string {
  return options.clientId ?? `${mqttClientId}-results`;
}

export function startResults(url: string, mqtt: Omit<MqttOptions, 'embedded'>, options: PublishOptions, log: Logger): Results {
  const clientId = resultsClientId(options, mqtt.clientId);
  const rlog = log.child({ connection: 'results' });
  const client = createMqttClient(url, { ...mqtt, clientId }, [], rlog, undefined, {}, 'results connection');
  client.on('error', (err) => rlog.error({ err: err.message, code: (err as { code?: unknown }).code }, 'results connection: mqtt error'));
  client.on('offline', () => rlog.warn({ url, clientId }, 'results connection lost; reconnecting'));
  const limited = createRateLimitedLog(10_000);
  const sender = createSender(options, client, corkClient(client), (err) => limited('error', (suppressed) => log.warn({ err: err.message, failedSinceLast: suppressed }, 'result publish failed')), (m) =>
    limited('skip', (suppressed) => log.warn({ id: m.id, asset: m.asset, skippedSinceLast: suppressed, maxPendingResults: options.maxPendingResults, maxPendingBytes: options.maxPendingBytes }, 'result not published: too many pending (the prediction is stored)')),
  );
  const outgoing = createOutgoing(options.batch, (r, topic, problem) => {
    sender.refused(1);
    limited('invalid', (suppressed) => log.error({ id: r.id, topic, problem, skippedSinceLast: suppressed }, 'result not published: a broker would reject its topic (the prediction is stored)'));
  });
  const c = sender.counts;
  let closed = false;
  client.connect();
  return {
    publish(results) {
      if (!closed) sender.send(outgoing(results));
    },
    settled: () => sender.settled(),
    // Every result handed over is either refused at once (counted invalid) or queued: the sender's pending is all of it.
    get pending() {
      return sender.pending;
    },
    get sent() {
      return c.sent;
    },
    get skipped() {
      return c.skipped;
    },
    get invalid() {
      return c.invalid;
    },
    get connected() {
      return client.connected;
    },
    clientId,
    close() {
      closed = true;
      // Results still unacknowledged here outlived the wait for them (the broker is gone or frozen): waiting again
      // for them would only spend the stop's deadline. They are in the store; the connection goes at once.
      return new Promise<void>((resolve) => client.end(sender.pending > 0, {}, () => resolve()));
    },
    destroy() {
      closed = true;
      client.end(true);
    },
  };
}
