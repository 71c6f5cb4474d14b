#!/usr/bin/env node
// An SQS queue worker in the shape people deploy: sqs-consumer polls, the handler does
// the work, the message is deleted on success. Its AWS credentials come from the EC2
// instance metadata service, cached by credcache in whatever store the config names.
//
// At exit it reports one JSON line (stdout, or --report PATH):
//   { pid, backend, processed, credentialErrors, firstCredentialMs, messageIds, ... }
// firstCredentialMs is measured from process start (performance.timeOrigin), so node's
// own start-up and module loading count: that is what a fleet of short-lived workers pays.
import { writeFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { createCredentials } from "./credentials.mjs";
import { parseWorkerOptions, USAGE, UsageError } from "./options.mjs";

/** How many distinct error lines a report keeps. */
const MAX_ERROR_SAMPLES = 5;

/** @param {unknown} error */
const messageOf = (error) =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error).slice(0, 300);

async function main() {
  let options;
  try {
    options = parseWorkerOptions(process.argv.slice(2), process.env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`sqs-worker: ${error.message}\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  if (options.help) {
    process.stdout.write(USAGE);
    return;
  }
  const opts = options;

  const report = {
    pid: process.pid,
    backend: "?",
    processed: 0,
    credentialErrors: 0,
    /** @type {number | null} */
    firstCredentialMs: null,
    /** @type {string[]} */
    messageIds: [],
    /** @type {string[]} distinct error lines, secrets never included (the SDK's messages carry none) */
    errorSamples: [],
    processingErrors: 0,
    sqsErrors: 0,
    /** @type {string} */
    exitReason: "",
    /** @type {import("@credcache/core").CacheStats | undefined} */
    cache: undefined,
    maxRssKiB: 0,
    elapsedMs: 0,
  };
  /** @param {string} line */
  const sample = (line) => {
    if (report.errorSamples.length < MAX_ERROR_SAMPLES && !report.errorSamples.includes(line)) {
      report.errorSamples.push(line);
    }
  };
  const log = (/** @type {string} */ line) => process.stderr.write(`[sqs-worker ${process.pid}] ${line}\n`);

  let reported = false;
  const writeReport = () => {
    if (reported) return;
    reported = true;
    report.maxRssKiB = process.resourceUsage().maxRSS;
    report.elapsedMs = Math.round(performance.now());
    const line = `${JSON.stringify(report)}\n`;
    if (opts.reportPath) writeFileSync(opts.reportPath, line);
    else process.stdout.write(line);
  };
  // A worker that dies still says what it did, and why it died.
  const crash = (/** @type {unknown} */ error) => {
    log(`crash: ${error instanceof Error ? error.stack : String(error)}`);
    report.exitReason = "crash";
    sample(`crash: ${messageOf(error)}`);
    writeReport();
    process.exit(1);
  };
  process.on("uncaughtException", crash);
  process.on("unhandledRejection", crash);

  /** @type {import("@smithy/types").Logger} */
  const logger = {
    debug: opts.verbose ? (...a) => log(a.join(" ")) : () => {},
    info: opts.verbose ? (...a) => log(a.join(" ")) : () => {},
    warn: (...a) => log(`warn: ${a.join(" ")}`),
    error: (...a) => log(`error: ${a.join(" ")}`),
  };

  let credentials;
  try {
    credentials = await createCredentials({
      backend: opts.backend,
      imds: opts.imds,
      refresh: opts.refresh,
      logger,
      ...(opts.verbose && { onEvent: (event) => log(`credcache ${event.type}`) }),
    });
  } catch (error) {
    // A malformed config or a missing adapter package: say what to fix, exit non-zero.
    process.stderr.write(`sqs-worker: ${messageOf(error)}\n`);
    process.exitCode = 2;
    return;
  }
  report.backend = credentials.label;
  const source = credentials.provider;

  /** Errors the provider threw, so the consumer's error event does not count them twice. */
  const credentialFailures = new WeakSet();
  /** @type {import("@smithy/types").AwsCredentialIdentityProvider} */
  const timedProvider = async (properties) => {
    try {
      const identity = await source(properties);
      report.firstCredentialMs ??= Math.round(performance.now() * 10) / 10;
      return identity;
    } catch (error) {
      if (error !== null && typeof error === "object") credentialFailures.add(error);
      report.credentialErrors++;
      const line = messageOf(error);
      sample(line);
      log(`credential error: ${line}`);
      throw error;
    }
  };

  const [{ SQSClient }, { Consumer }] = await Promise.all([
    import("@aws-sdk/client-sqs"),
    import("sqs-consumer"),
  ]);
  const sqs = new SQSClient({
    region: opts.region,
    ...(opts.endpoint && { endpoint: opts.endpoint }),
    credentials: timedProvider,
  });

  const consumer = Consumer.create({
    queueUrl: opts.queueUrl,
    sqs,
    batchSize: 1,
    waitTimeSeconds: opts.waitTimeSeconds,
    ...(opts.visibilityTimeout !== undefined && { visibilityTimeout: opts.visibilityTimeout }),
    authenticationErrorTimeout: opts.authErrorTimeoutMs,
    handleMessage: async (message) => {
      // The work: a real worker would do something with the payload.
      const job = JSON.parse(message.Body ?? "null");
      if (job === null || typeof job !== "object")
        throw new Error(`message ${message.MessageId} is not a job`);
      return message; // acknowledged: sqs-consumer deletes it
    },
  });

  let stopping = false;
  const stop = (/** @type {string} */ reason) => {
    if (stopping) return;
    stopping = true;
    report.exitReason = reason;
    consumer.stop();
  };

  consumer.on("message_processed", (message) => {
    report.processed++;
    report.messageIds.push(/** @type {string} */ (message.MessageId));
    if (opts.maxMessages !== undefined && report.processed >= opts.maxMessages) stop("max-messages");
  });
  consumer.on("empty", () => {
    if (opts.stopWhenEmpty) stop("empty");
  });
  consumer.on("processing_error", (error, message) => {
    report.processingErrors++;
    log(`processing error on ${message.MessageId}: ${error.message}`);
  });
  consumer.on("error", (error) => {
    // Credential failures surface here too, wrapped by sqs-consumer; they are counted
    // once, in the provider above.
    const cause = /** @type {{ cause?: unknown }} */ (error).cause;
    if (cause !== null && typeof cause === "object" && credentialFailures.has(cause)) return;
    report.sqsErrors++;
    sample(messageOf(error));
    log(`sqs error: ${error.message}`);
  });

  const stopped = new Promise((resolve) => consumer.once("stopped", resolve));
  const timer = opts.maxTimeMs ? setTimeout(() => stop("max-time"), opts.maxTimeMs) : undefined;
  for (const signal of /** @type {const} */ (["SIGINT", "SIGTERM"])) {
    process.once(signal, () => stop(signal));
  }

  consumer.start();
  await stopped;
  clearTimeout(timer);

  await credentials.close();
  sqs.destroy();
  report.cache = credentials.stats();
  writeReport();
  // Whatever a store or client left open must not keep a finished worker alive.
  setTimeout(() => process.exit(), 2_000).unref();
}

main().catch((error) => {
  process.stderr.write(`sqs-worker: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exitCode = 1;
});
