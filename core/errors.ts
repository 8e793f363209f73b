/**
 * Coded errors. Libraries throw `OutpostError`; the edge (HTTP handler, adapter host, CLI) logs it
 * once and maps it to a response. `retryable` tells callers whether the same request may succeed
 * later.
 *
 * Each layer and each adapter owns its codes: it declares them with `defineErrors` in its own
 * `errors.ts` and adds them to `ErrorCatalogue` by declaration merging, so `new OutpostError(code)`
 * and `isOutpostError(err, code)` are checked against every code at compile time, and the
 * definition is looked up at run time (a module throwing a code imports the catalogue that
 * defines it). The codes below are the ones every layer shares.
 */
export interface ErrorDefinition {
  /** The HTTP status an API answers with. */
  readonly status: number;
  /** Whether the same request may succeed later. */
  readonly retryable: boolean;
  readonly message: string;
}

/** Every code of every catalogue; catalogues add theirs with `declare module` (see defineErrors). */
// biome-ignore lint/suspicious/noEmptyInterface: filled by declaration merging
export interface ErrorCatalogue {}

export type ErrorCode = keyof ErrorCatalogue & string;

/** The type a catalogue merges into `ErrorCatalogue`: `interface ErrorCatalogue extends CodesOf<typeof myErrors> {}`. */
export type CodesOf<C> = { readonly [K in keyof C]: ErrorDefinition };

const definitions = new Map<string, ErrorDefinition>();

/** Registers a catalogue's codes (a code defined twice with different meanings is a programming error). */
export function defineErrors<const C extends Record<string, ErrorDefinition>>(catalogue: C): C {
  for (const [code, definition] of Object.entries(catalogue)) {
    const known = definitions.get(code);
    if (known && JSON.stringify(known) !== JSON.stringify(definition)) throw new Error(`error code ${code} is defined twice`);
    definitions.set(code, definition);
  }
  return catalogue;
}

const coreErrors = defineErrors({
  CONFIG_INVALID: { status: 400, retryable: false, message: 'configuration is invalid' },
  CONFIG_NOT_FOUND: { status: 400, retryable: false, message: 'configuration file not found' },
  DP_UNKNOWN: { status: 404, retryable: false, message: 'unknown datapoint' },
  DP_LIMIT: { status: 429, retryable: false, message: 'too many auto-registered datapoints' },
  DP_INVALID: { status: 400, retryable: false, message: 'datapoint definition is invalid' },
  DP_CONFLICT: { status: 409, retryable: false, message: 'datapoint is owned by another adapter' },
  DP_CONFIG_OWNED: { status: 409, retryable: false, message: 'datapoint is defined in the configuration file' },
  DP_DELETING: { status: 409, retryable: true, message: 'datapoint is being deleted' },
  DP_NOT_ACTUATOR: { status: 400, retryable: false, message: 'datapoint is not an actuator' },
  VALUE_MALFORMED: { status: 400, retryable: false, message: 'value message is malformed' },
  VALUE_TYPE: { status: 400, retryable: false, message: 'value has the wrong type' },
  VALUE_TIME: { status: 400, retryable: false, message: 'value timestamp is not acceptable' },
  SETPOINT_OUT_OF_RANGE: { status: 400, retryable: false, message: 'setpoint is out of range' },
  SETPOINT_EXPIRED: { status: 400, retryable: false, message: 'setpoint has already expired' },
  SETPOINT_FAILED: { status: 502, retryable: true, message: 'device refused or failed the setpoint' },
  ADAPTER_UNAVAILABLE: { status: 503, retryable: true, message: 'adapter is not running' },
  ADAPTER_START_FAILED: { status: 500, retryable: true, message: 'adapter failed to start' },
  ADAPTER_CRASHED: { status: 500, retryable: true, message: 'adapter failed while running' },
  ADAPTER_STOP_TIMEOUT: { status: 500, retryable: false, message: 'adapter did not stop in time' },
  TOPIC_PROTECTED: { status: 403, retryable: false, message: 'topic is reserved for the gateway' },
  NOT_AUTHENTICATED: { status: 401, retryable: false, message: 'authentication required' },
  FORBIDDEN: { status: 403, retryable: false, message: 'the role of this login does not allow this' },
  CSRF_FAILED: { status: 403, retryable: false, message: 'cross-site request refused (missing or wrong CSRF token)' },
  LOGIN_THROTTLED: { status: 429, retryable: true, message: 'too many failed logins: wait before trying again' },
  AUTH_CONFLICT: { status: 409, retryable: false, message: 'user or token change conflicts with the current state' },
  BODY_TOO_LARGE: { status: 413, retryable: false, message: 'request body is larger than the configured limit' },
  NOT_FOUND: { status: 404, retryable: false, message: 'not found' },
  BAD_REQUEST: { status: 400, retryable: false, message: 'bad request' },
  GATEWAY_UNREACHABLE: { status: 503, retryable: true, message: 'the running gateway cannot be reached' },
  PORT_CONFLICT: { status: 400, retryable: false, message: 'shared port opened with conflicting settings' },
  UPLOAD_TOO_LARGE: { status: 413, retryable: false, message: 'upload is larger than the configured limit' },
  FLOWS_START_FAILED: { status: 500, retryable: false, message: 'Node-RED failed to start' },
  INTERNAL: { status: 500, retryable: false, message: 'internal error' },
});

declare module './errors.js' {
  interface ErrorCatalogue extends CodesOf<typeof coreErrors> {}
}

export class OutpostError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly details?: unknown;

  constructor(code: ErrorCode, message?: string, options: { details?: unknown; cause?: unknown } = {}) {
    // A code whose catalogue was never loaded still makes an error, flagged as internal.
    const entry = definitions.get(code) ?? { status: 500, retryable: false, message: `${code} (undefined error code)` };
    super(message ?? entry.message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'OutpostError';
    this.code = code;
    this.status = entry.status;
    this.retryable = entry.retryable;
    this.details = options.details;
  }

  toJSON(): { code: ErrorCode; message: string; retryable: boolean; details?: unknown } {
    return {
      code: this.code,
      message: this.message,
      retryable: this.retryable,
      ...(this.details === undefined ? {} : { details: this.details }),
    };
  }
}

export function isOutpostError(err: unknown, code?: ErrorCode): err is OutpostError {
  return err instanceof OutpostError && (code === undefined || err.code === code);
}

/** Wraps anything thrown into an OutpostError without losing the original as `cause`. */
export function toOutpostError(err: unknown, fallback: ErrorCode = 'INTERNAL'): OutpostError {
  if (err instanceof OutpostError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new OutpostError(fallback, message, { cause: err });
}
