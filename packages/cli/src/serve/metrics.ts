import type { CachedCredentialProvider } from "@credcache/core";

/** Why a request was refused before its token was looked at. */
const REFUSAL_REASONS = ["headers", "forwarded", "host", "method"] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/**
 * Counters of `credcache serve`, rendered in the Prometheus text format. Only names,
 * counts and times: never a key id, secret, token or header value.
 */
export class ServeMetrics {
  private readonly responses = new Map<string, number>();
  private readonly refusals = new Map<RefusalReason, number>();
  private readonly expirations = new Map<string, number | undefined>();
  unauthorized = 0;

  constructor(
    private readonly providers: ReadonlyMap<string, CachedCredentialProvider>,
    private readonly now: () => number = Date.now,
  ) {}

  response(credential: string, status: number): void {
    const key = `${credential}\u0000${status}`;
    this.responses.set(key, (this.responses.get(key) ?? 0) + 1);
  }

  refused(reason: RefusalReason): void {
    this.refusals.set(reason, (this.refusals.get(reason) ?? 0) + 1);
  }

  /** The expiration (epoch ms) of the set a credential holds now; `undefined`: never expires. */
  expiresAt(credential: string, epochMs: number | undefined): void {
    this.expirations.set(credential, epochMs);
  }

  /** Seconds left on each credential's set, `undefined` when it has none yet. */
  secondsLeft(credential: string): number | undefined {
    if (!this.expirations.has(credential)) return undefined;
    const at = this.expirations.get(credential);
    return at === undefined ? Number.POSITIVE_INFINITY : Math.round((at - this.now()) / 1000);
  }

  render(): string {
    const out: string[] = [];
    const family = (name: string, type: string, help: string, samples: Array<[string, number]>) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of samples) out.push(`${name}${labels} ${formatValue(value)}`);
    };
    const each = (pick: (p: CachedCredentialProvider, name: string) => number | undefined) => {
      const samples: Array<[string, number]> = [];
      for (const [name, provider] of this.providers) {
        const value = pick(provider, name);
        if (value !== undefined) samples.push([`{credential="${name}"}`, value]);
      }
      return samples;
    };
    const counter = (
      name: string,
      help: string,
      stat: "sourceCalls" | "sourceFailures" | "staleServed" | "cacheErrors",
    ) =>
      family(
        name,
        "counter",
        help,
        each((p) => p.stats()[stat]),
      );
    counter(
      "credcache_serve_source_fetches_total",
      "Calls to the credential source (IMDS, STS, ...).",
      "sourceCalls",
    );
    counter(
      "credcache_serve_source_failures_total",
      "Failed calls to the credential source.",
      "sourceFailures",
    );
    family("credcache_serve_cache_hits_total", "counter", "Resolutions answered from a cache layer.", [
      ...each((p) => p.stats().hitsL1).map(([l, v]): [string, number] => [l.replace("}", ',layer="l1"}'), v]),
      ...each((p) => p.stats().hitsL2).map(([l, v]): [string, number] => [l.replace("}", ',layer="l2"}'), v]),
    ]);
    counter(
      "credcache_serve_stale_served_total",
      "Resolutions answered with a still-valid set after the source failed.",
      "staleServed",
    );
    counter(
      "credcache_serve_cache_errors_total",
      "Store calls that failed or timed out (the server went on without the store).",
      "cacheErrors",
    );
    family(
      "credcache_serve_seconds_to_expiry",
      "gauge",
      "Seconds until the credentials held now expire (+Inf: they never do).",
      each((_, name) => this.secondsLeft(name)),
    );
    family(
      "credcache_serve_responses_total",
      "counter",
      "Credential requests answered, by credential path and HTTP status.",
      [...this.responses].map(([key, n]): [string, number] => {
        const [credential, status] = key.split("\u0000");
        return [`{credential="${credential}",status="${status}"}`, n];
      }),
    );
    family(
      "credcache_serve_unauthorized_total",
      "counter",
      "Credential requests refused for a missing or wrong token.",
      [["", this.unauthorized]],
    );
    family(
      "credcache_serve_refused_total",
      "counter",
      "Requests refused before any token check: too many headers, proxied (forwarded), foreign Host header, or method.",
      REFUSAL_REASONS.map((r): [string, number] => [`{reason="${r}"}`, this.refusals.get(r) ?? 0]),
    );
    return `${out.join("\n")}\n`;
  }
}

function formatValue(value: number): string {
  if (value === Number.POSITIVE_INFINITY) return "+Inf";
  return String(value);
}
