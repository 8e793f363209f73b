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

/** The definition of a code, from whichever catalogue declared it. */
export function errorDefinition(code: string): ErrorDefinition | undefined {
  return definitions.get(code);
}

/** Every code registered so far (the catalogues of the modules loaded). */
export function registeredErrorCodes(): string[] {
  return [...definitions.keys()];
}

export const coreErrors = defineErrors({
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
  STORAGE_WRITE_FAILED: { status: 503, retryable: true, message: 'storage write failed' },
  STORAGE_CLOSED: { status: 503, retryable: true, message: 'storage is closed' },
  STORAGE_OPEN_FAILED: { status: 500, retryable: false, message: 'storage could not be opened' },
  STORAGE_IN_USE: { status: 409, retryable: true, message: 'storage is in use by a running gateway' },
  STORAGE_CORRUPT: { status: 500, retryable: false, message: 'storage is damaged and needs repair' },
  BACKUP_INVALID: { status: 400, retryable: false, message: 'backup file is invalid' },
  RESTORE_BUSY: { status: 409, retryable: true, message: 'a restore is already running' },
  PORT_CONFLICT: { status: 400, retryable: false, message: 'shared port opened with conflicting settings' },
  MODBUS_TIMEOUT: { status: 504, retryable: true, message: 'Modbus device did not answer in time' },
  MODBUS_EXCEPTION: { status: 502, retryable: false, message: 'Modbus device answered with an exception code' },
  MODBUS_FRAME: { status: 502, retryable: true, message: 'Modbus response was corrupt (CRC, length or address)' },
  MODBUS_PORT_UNAVAILABLE: { status: 503, retryable: true, message: 'Modbus port or connection is not available' },
  MODBUS_TEMPLATE_INVALID: { status: 400, retryable: false, message: 'Modbus device template is invalid' },
  BMS_FILE_INVALID: { status: 400, retryable: false, message: 'building-automation export file is malformed' },
  BMS_FILE_INCOMPLETE: { status: 400, retryable: false, message: 'building-automation export file is cut off or still being written' },
  BMS_POINT_UNMAPPED: { status: 400, retryable: false, message: 'building-automation point has no datapoint mapping' },
  UPLOAD_TOO_LARGE: { status: 413, retryable: false, message: 'upload is larger than the configured limit' },
  CHARGER_OFFLINE: { status: 503, retryable: true, message: 'charger is not connected' },
  CHARGER_CALL_FAILED: { status: 502, retryable: true, message: 'charger did not answer the OCPP call' },
  CHARGER_REJECTED: { status: 409, retryable: false, message: 'charger rejected the OCPP call' },
  IRIDIUM_TIMEOUT: { status: 504, retryable: true, message: 'Iridium modem did not answer in time' },
  IRIDIUM_PROTOCOL: { status: 502, retryable: true, message: 'Iridium modem sent an unexpected response' },
  IRIDIUM_CHECKSUM: { status: 502, retryable: true, message: 'Iridium SBD checksum mismatch' },
  IRIDIUM_MO_SIZE: { status: 400, retryable: false, message: 'Iridium MO message size is not acceptable' },
  IRIDIUM_SESSION_FAILED: { status: 503, retryable: true, message: 'Iridium SBD session failed' },
  IRIDIUM_ACCOUNT: { status: 503, retryable: false, message: 'Iridium access denied (account or modem locked)' },
  IRIDIUM_BUDGET: { status: 429, retryable: true, message: 'Iridium credit budget exhausted' },
  IRIDIUM_QUEUE_FULL: { status: 503, retryable: true, message: 'Iridium send queue is full' },
  IRIDIUM_CODEC: { status: 400, retryable: false, message: 'Iridium message cannot be encoded or decoded' },
  IRIDIUM_MT_REFUSED: { status: 403, retryable: false, message: 'Iridium MT message refused (forged, replayed or malformed)' },
  SYNC_LINK_DOWN: { status: 503, retryable: true, message: 'upstream link is not connected' },
  SYNC_ACK_TIMEOUT: { status: 504, retryable: true, message: 'upstream did not acknowledge in time' },
  SYNC_THROTTLED: { status: 429, retryable: true, message: 'upstream asked to retry later' },
  SYNC_REJECTED: { status: 502, retryable: false, message: 'upstream refused the batch' },
  SYNC_LINK_REFUSED: { status: 502, retryable: true, message: 'upstream refused the request itself (authentication, URL or method), not its records' },
  SYNC_BLOCKED: { status: 502, retryable: true, message: 'upstream refuses records and they could not be isolated as single poison records' },
  SYNC_CONFIG: { status: 400, retryable: false, message: 'sync configuration is unusable (certificate, key or URL)' },
  SYNC_COMMAND_INVALID: { status: 400, retryable: false, message: 'downlink command is malformed or unknown' },
  SYNC_COMMAND_UNSIGNED: { status: 401, retryable: false, message: 'downlink command is not signed and this link takes only signed commands' },
  SYNC_COMMAND_FORGED: { status: 403, retryable: false, message: 'downlink command signature does not match the link secret' },
  SYNC_COMMAND_STALE: { status: 400, retryable: false, message: 'downlink command is too old, or dated too far in the future (clock skew)' },
  SYNC_COMMAND_SUPERSEDED: { status: 409, retryable: false, message: 'retained downlink command is not newer than the last one applied' },
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
