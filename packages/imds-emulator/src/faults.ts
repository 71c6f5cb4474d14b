/**
 * Where a fault applies:
 * - `token`: `PUT /latest/api/token`
 * - `role`: the role listing, `GET .../iam/security-credentials/` (and `-extended/`)
 * - `credentials`: `GET .../iam/security-credentials/<role>` and `.../security-credentials-extended/<role>`
 * - `sts`: STS calls (`POST /`: AssumeRole, AssumeRoleWithWebIdentity)
 * - `container`: the container-credentials routes (`GET /v2/credentials/<id>`, `GET /v1/credentials`)
 * - `any`: every request, whatever its path; consulted only when the request's own route has no fault
 *   that fires
 */
export type ImdsFaultRoute = "token" | "role" | "credentials" | "sts" | "container" | "any";

/**
 * One injected failure. Pick at most one effect (`status`, `hang`, `reset`,
 * `expired`, `malformed`); `latencyMs` may be added to any of them or used
 * alone. By default a fault hits every request on its route until cleared;
 * `count` or `probability` (not both) narrow that.
 *
 * @example
 * ```ts
 * emulator.setFaults({ credentials: { status: 503, count: 2 } }); // the next 2 credential reads fail
 * emulator.setFaults({ token: { hang: true } });                  // token PUTs never answer
 * emulator.setFaults({ any: { latencyMs: 50, probability: 0.1 } });
 * emulator.setFaults(undefined);                                  // clear all
 * ```
 */
export interface ImdsFault {
  /** Delay before answering (or before the other effect), in ms. */
  latencyMs?: number;
  /**
   * Answer with this HTTP status (400–599) and a short text body. 429/500/503 are
   * what a throttled or sick IMDS returns; 403/404/405 on `token` mimic a proxy or
   * old emulator without IMDSv2, which makes the SDK fall back to IMDSv1.
   */
  status?: number;
  /** Never answer; the client has to time out. `close()` still ends the connection. */
  hang?: true;
  /** Destroy the connection with a TCP reset instead of answering. */
  reset?: true;
  /** `credentials` only: serve the current set with an `Expiration` one minute in the past. */
  expired?: true;
  /** `credentials` only: answer 200 with a body that is not valid JSON. */
  malformed?: true;
  /** `sts` only: answer 400 `Throttling: Rate exceeded`, as STS answers a caller over its rate. */
  throttle?: true;
  /** Apply to the next `count` requests on the route, then stop. */
  count?: number;
  /** Apply to each request on the route with this probability (0–1). */
  probability?: number;
  /**
   * Apply for this long from the first request the fault sees (by the emulator's clock), then
   * stop: "STS throttled for the first 5 s of the herd", however late the herd's processes start.
   */
  forMs?: number;
}

/** Faults per route. `{}` or `undefined` means no faults. */
export type ImdsFaults = { [R in ImdsFaultRoute]?: ImdsFault };

const ROUTES: readonly ImdsFaultRoute[] = ["token", "role", "credentials", "sts", "container", "any"];
const EFFECTS = ["status", "hang", "reset", "expired", "malformed", "throttle"] as const;
const KEYS = new Set<string>(["latencyMs", "count", "probability", "forMs", ...EFFECTS]);

/** Checks a faults object and copies it, so later changes by the caller have no effect. */
export function validateFaults(faults: ImdsFaults | undefined): ImdsFaults {
  if (faults === undefined || faults === null) return {};
  if (typeof faults !== "object") throw new TypeError("faults must be an object keyed by route");
  const out: ImdsFaults = {};
  for (const [route, fault] of Object.entries(faults)) {
    if (!ROUTES.includes(route as ImdsFaultRoute)) {
      throw new TypeError(`Unknown fault route "${route}"; use one of ${ROUTES.join(", ")}`);
    }
    if (fault === undefined) continue;
    out[route as ImdsFaultRoute] = validateFault(route as ImdsFaultRoute, fault);
  }
  return out;
}

function validateFault(route: ImdsFaultRoute, fault: ImdsFault): ImdsFault {
  const where = `faults.${route}`;
  if (typeof fault !== "object" || fault === null) throw new TypeError(`${where} must be an object`);
  for (const key of Object.keys(fault)) {
    if (!KEYS.has(key)) throw new TypeError(`${where}.${key} is not a fault option`);
  }
  // `hang: false` from plain JS callers means "off", not an effect.
  const effects = EFFECTS.filter((e) => ![undefined, false].includes(fault[e] as never));
  if (effects.length > 1) {
    throw new TypeError(`${where} has ${effects.join(" and ")}; pick one effect per route`);
  }
  if (effects.length === 0 && fault.latencyMs === undefined) {
    throw new TypeError(
      `${where} does nothing; set latencyMs, status, hang, reset, expired, malformed or throttle`,
    );
  }
  if (fault.latencyMs !== undefined && !(Number.isFinite(fault.latencyMs) && fault.latencyMs >= 0)) {
    throw new RangeError(`${where}.latencyMs must be a number of milliseconds >= 0`);
  }
  if (
    fault.status !== undefined &&
    !(Number.isInteger(fault.status) && fault.status >= 400 && fault.status <= 599)
  ) {
    throw new RangeError(`${where}.status must be an HTTP error status (400-599)`);
  }
  if ((fault.expired || fault.malformed) && route !== "credentials") {
    throw new TypeError(`${where}: expired and malformed apply to the credentials route only`);
  }
  if (fault.throttle && route !== "sts")
    throw new TypeError(`${where}: throttle applies to the sts route only`);
  if (fault.forMs !== undefined && !(Number.isFinite(fault.forMs) && fault.forMs >= 0)) {
    throw new RangeError(`${where}.forMs must be a number of milliseconds >= 0`);
  }
  if (fault.count !== undefined && fault.probability !== undefined) {
    throw new TypeError(`${where} has both count and probability; use one`);
  }
  if (fault.count !== undefined && !(Number.isInteger(fault.count) && fault.count >= 0)) {
    throw new RangeError(`${where}.count must be an integer >= 0`);
  }
  if (
    fault.probability !== undefined &&
    !(Number.isFinite(fault.probability) && fault.probability >= 0 && fault.probability <= 1)
  ) {
    throw new RangeError(`${where}.probability must be between 0 and 1`);
  }
  return { ...fault };
}

/** The faults in force, with the remaining counts. */
export class FaultPlan {
  #faults: ImdsFaults = {};
  /** When each `forMs` fault first fired. */
  #firstSeen = new Map<ImdsFault, number>();

  constructor(private readonly clock: { now(): number }) {}

  set(faults: ImdsFaults | undefined): void {
    this.#faults = validateFaults(faults);
    this.#firstSeen.clear();
  }

  /** The fault to apply to this request, if any; consumes one `count`. */
  pick(route: ImdsFaultRoute | undefined): ImdsFault | undefined {
    return (route && this.#fire(route)) || this.#fire("any");
  }

  #fire(route: ImdsFaultRoute): ImdsFault | undefined {
    const fault = this.#faults[route];
    if (!fault) return undefined;
    if (fault.forMs !== undefined) {
      const now = this.clock.now();
      const first = this.#firstSeen.get(fault) ?? now;
      this.#firstSeen.set(fault, first);
      if (now - first >= fault.forMs) return undefined;
    }
    if (fault.count !== undefined) {
      if (fault.count <= 0) return undefined;
      fault.count--;
    } else if (fault.probability !== undefined && !(Math.random() < fault.probability)) {
      return undefined;
    }
    return fault;
  }
}
