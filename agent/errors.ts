// Errors: the one registry of error classes with stable codes.
// Every code has a row in the README's error table. Bad input is never thrown past its stage:
// it becomes a dead letter with one of the REJECT_* reasons below.

export const ErrorCodes = {
  EDGE_ERR_CONFIG: { retryable: false, exitCode: 78, summary: 'the config file is missing, unreadable or invalid' },
  EDGE_ERR_CLI_USAGE: { retryable: false, exitCode: 64, summary: 'unknown command or option on the command line' },
  EDGE_ERR_MANIFEST: { retryable: false, exitCode: 78, summary: 'the model manifest is missing or invalid' },
  EDGE_ERR_MODEL_FILE: { retryable: false, exitCode: 78, summary: 'the model file is missing or its sha256 differs from the manifest' },
  EDGE_ERR_MODEL_CONTRACT: { retryable: false, exitCode: 78, summary: "the ONNX session's inputs/outputs differ from the manifest" },
  EDGE_ERR_MODEL_GOLDEN: { retryable: false, exitCode: 78, summary: "a golden vector's output differs from the manifest" },
  EDGE_ERR_MODEL_LOAD: { retryable: false, exitCode: 78, summary: 'onnxruntime could not load the model' },
  EDGE_ERR_CONFIG_MODEL_MISMATCH: { retryable: false, exitCode: 78, summary: "the config's feature mapping does not fit the model's features" },
  EDGE_ERR_STORE: { retryable: false, exitCode: 74, summary: 'the SQLite store could not be opened or migrated' },
  EDGE_ERR_STORE_LOCKED: { retryable: true, exitCode: 74, summary: 'another edge-agent holds the store' },
  EDGE_ERR_BROKER: { retryable: true, exitCode: 69, summary: 'the MQTT broker refused the connection or the embedded broker could not start' },
  EDGE_ERR_INFERENCE: { retryable: true, exitCode: 70, summary: 'the inference worker failed' },
  EDGE_ERR_CONTROL: { retryable: true, exitCode: 69, summary: "the running agent's control socket did not answer" },
  EDGE_ERR_INTERNAL: { retryable: false, exitCode: 70, summary: 'an unexpected error inside the agent' },
  EDGE_ERR_MODEL_VERIFY: { retryable: false, exitCode: 65, summary: 'the verification of a candidate model crashed or did not finish in time' },
  EDGE_ERR_MODEL_LATENCY: { retryable: false, exitCode: 65, summary: "a candidate model is slower on this machine than its manifest's latency budget" },
  EDGE_ERR_DRILL_FAILED: { retryable: false, exitCode: 70, summary: 'a drill step failed, or the drill did not end on the version it started from' },
  EDGE_ERR_PUSH_FAILED: { retryable: false, exitCode: 65, summary: 'a pushed release was refused or rolled back by at least one agent' },
  EDGE_ERR_PUSH_TIMEOUT: { retryable: true, exitCode: 75, summary: 'not every agent of the target finished a push within the timeout' },
  EDGE_ERR_RELEASE_DOWNLOAD: { retryable: true, exitCode: 65, summary: 'a pushed release could not be downloaded: too large, no room on disk, an HTTP error, or past its deadline' },
  EDGE_ERR_RELEASE_FILES: { retryable: false, exitCode: 65, summary: "a release's folder holds files its manifest does not list, or a listed file is missing, of another size, or not a regular file" },
  EDGE_ERR_RELEASE_HASH: { retryable: false, exitCode: 65, summary: "a release file's sha256 differs from its manifest" },
  EDGE_ERR_RELEASE_UNSIGNED: { retryable: false, exitCode: 65, summary: 'a release has no signature and its model does not accept unsigned releases' },
  EDGE_ERR_RELEASE_SIGNATURE: { retryable: false, exitCode: 65, summary: "a release's signature is malformed, by an untrusted key, or does not match its manifest" },
  EDGE_ERR_RELEASE_DOWNGRADE: { retryable: false, exitCode: 65, summary: 'a release is below the highest version trusted for its model and not signed as a rollback' },
  EDGE_ERR_RELEASE_EXPIRED: { retryable: false, exitCode: 65, summary: 'a release is past its expiry (beyond the clock slack)' },
  EDGE_ERR_SYNC: { retryable: true, exitCode: 69, summary: 'a sync target was unavailable or refused this agent (sync now)' },
  EDGE_ERR_SHUTDOWN_TIMEOUT: { retryable: false, exitCode: 70, summary: 'shutdown did not finish within shutdown.deadlineMs' },
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export class EdgeError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly exitCode: number;
  readonly details: readonly string[];

  constructor(code: ErrorCode, message: string, options: { details?: readonly string[]; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'EdgeError';
    this.code = code;
    this.retryable = ErrorCodes[code].retryable;
    this.exitCode = ErrorCodes[code].exitCode;
    this.details = options.details ?? [];
  }
}

export function isEdgeError(err: unknown): err is EdgeError {
  return err instanceof EdgeError;
}

/** Why a message became a dead letter. Stored in dead_letters.reason_code; the README lists them. */
export const RejectReasons = {
  REJECT_PAYLOAD_TOO_LARGE: 'payload is larger than ingest.maxPayloadBytes',
  REJECT_NOT_UTF8: 'payload is not valid UTF-8',
  REJECT_MALFORMED_JSON: 'payload is not valid JSON',
  REJECT_NOT_OBJECT: 'payload is JSON but not an object',
  REJECT_MISSING_FIELD: 'a mapped field is absent from the payload',
  REJECT_WRONG_TYPE: 'a mapped field is not a number',
  REJECT_NOT_FINITE: 'a mapped field is NaN or infinite',
  REJECT_OUT_OF_RANGE: "a feature is outside the manifest's valid range",
  REJECT_NO_ASSET: 'the asset id could not be taken from the topic or payload',
  REJECT_BAD_ASSET: 'the asset id cannot stand in a topic (empty, too long, / + #, control characters, noncharacters, invalid UTF-8)',
  REJECT_INFERENCE_FAILED: 'the model failed on this batch',
  REJECT_NONFINITE_OUTPUT: 'the model gave NaN or an infinite value for this reading',
  REJECT_NO_MODEL: "no model in the config subscribes to the message's topic (a subscription an earlier config left in the broker session)",
  REJECT_BAD_LABEL: 'a label message (truth.topic) cannot be read: not a JSON object, no key, no outcome, a bad time, an unknown model, or text for a regression',
  REJECT_UNMATCHED_LABEL: 'a label found no prediction to join: none for its key within truth.windowMs before its time, that one has a label already, or the label came too late',
  REJECT_STALE: "a feature's newest value is older than its maximum age when its row is made (tags joined per asset)",
  REJECT_STUCK: 'a feature has kept the same value for quality stuckSamples readings in a row (a frozen sensor or gateway)',
  REJECT_SCALE_CHANGE: "a feature's recent values sit far from its training mean: a unit or scale change (°F where °C was trained)",
  REJECT_OUT_OF_TRAINING_RANGE: "a feature is outside the range seen in training (the manifest's baseline min and max)",
  REJECT_SPARKPLUG_PAYLOAD: 'a Sparkplug B payload cannot be decoded, or its topic is not a Sparkplug B topic',
  REJECT_SPARKPLUG_NO_BIRTH: 'Sparkplug B data from a node or device whose birth the agent has not seen, or by an alias its birth did not declare',
  REJECT_LIMIT: 'a new asset, node, device or metric beyond the configured limits, or more window samples in one message than windows.maxSamplesPerMessage (memory stays bounded)',
  REJECT_WINDOW_SAMPLES: 'window samples cannot be read (arrays of unequal length, no timestamp), or every sample is out of order or a duplicate',
} as const;

export type RejectReason = keyof typeof RejectReasons;
