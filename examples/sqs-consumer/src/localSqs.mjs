// A real SQS-compatible server (local-aws-sqs) in this process, for the demo and the tests.
//
// Worth knowing about local-aws-sqs 2.x:
// - `createSqsServer({ port: 0 })` works: the queue URLs use the port actually bound.
// - Queue URLs use `hostname` (default "localhost"); pass "127.0.0.1" to avoid IPv6 lookups.
// - It speaks the JSON protocol of the v3 SDK; credentials are not checked.
// - ReceiveMessage returns as soon as MaxNumberOfMessages messages are visible, otherwise
//   after WaitTimeSeconds + 40 ms (it scans every 10 ms), so long polls with a large batch
//   size wait the full time even when some messages are there.
// - ApproximateNumberOfMessages counts in-flight messages too (real SQS counts only visible
//   ones); ApproximateNumberOfMessagesNotVisible is the in-flight part.
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  SendMessageBatchCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import { createSqsServer } from "local-aws-sqs";

/** Credentials local-aws-sqs accepts (it checks none); used only by the harness itself. */
const HARNESS_CREDENTIALS = { accessKeyId: "AKIAHARNESS", secretAccessKey: "not-a-secret" };

/**
 * Starts local-aws-sqs on a free port of 127.0.0.1.
 *
 * @example
 * const sqs = await startLocalSqs();
 * const url = await sqs.createQueue("jobs");
 * const ids = await sqs.enqueue(url, 100);
 * (await sqs.depth(url)).total; // 100
 * await sqs.close();
 */
export async function startLocalSqs() {
  const server = await createSqsServer({
    port: 0,
    hostname: "127.0.0.1",
    emulateQueueCreationLifecycle: false,
  });
  const address = /** @type {import("node:net").AddressInfo} */ (server.address());
  const endpoint = `http://127.0.0.1:${address.port}`;
  const client = new SQSClient({ region: "us-east-1", endpoint, credentials: HARNESS_CREDENTIALS });

  return {
    endpoint,
    client,
    /** @param {string} name @returns {Promise<string>} the queue URL */
    async createQueue(name) {
      const { QueueUrl } = await client.send(new CreateQueueCommand({ QueueName: name }));
      return /** @type {string} */ (QueueUrl);
    },
    /**
     * Sends `count` jobs (`{"job": i}`), ten per batch call.
     * @param {string} queueUrl
     * @param {number} count
     * @returns {Promise<string[]>} the message ids
     */
    async enqueue(queueUrl, count) {
      const ids = [];
      for (let start = 0; start < count; start += 10) {
        const entries = [];
        for (let i = start; i < Math.min(count, start + 10); i++) {
          entries.push({ Id: `m${i}`, MessageBody: JSON.stringify({ job: i }) });
        }
        const out = await client.send(new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries }));
        if (out.Failed?.length) throw new Error(`SendMessageBatch failed for ${out.Failed.length} messages`);
        for (const ok of out.Successful ?? []) ids.push(/** @type {string} */ (ok.MessageId));
      }
      return ids;
    },
    /**
     * Messages left in the queue.
     * @param {string} queueUrl
     * @returns {Promise<{ total: number, inFlight: number }>}
     */
    async depth(queueUrl) {
      const { Attributes = {} } = await client.send(
        new GetQueueAttributesCommand({
          QueueUrl: queueUrl,
          AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        }),
      );
      return {
        total: Number(Attributes.ApproximateNumberOfMessages ?? 0),
        inFlight: Number(Attributes.ApproximateNumberOfMessagesNotVisible ?? 0),
      };
    },
    async close() {
      client.destroy();
      await new Promise((resolve) => {
        server.close(() => resolve(undefined));
        server.closeAllConnections?.();
      });
    },
  };
}
