const STORE_OPTIONS = `Cache options (flags beat the environment; a URL beats a config file):
  --cache URL        memory:, file:///abs/dir, sqlite:///abs/path.db, redis://host:6379 (rediss:// for TLS)
  --config FILE      JSON in the Laravel config/cache.php style:
                     { "default": "file", "stores": { "file": { "driver": "file", "dir": "/var/cache/credcache" } } }
                     Relative "dir" / "path" values are taken relative to the file.
  --store NAME       with --config: use this named store instead of "default"
  CREDCACHE_URL      used when neither --cache nor --config is given
  CREDCACHE_CONFIG   path of a config file, used when nothing above is set`;

const EXIT_CODES = `Exit codes: 0 ok, 1 the command failed (no credentials, store error), 2 usage or configuration error.`;

const TOP = `credcache - share AWS credentials across processes through a cache

Usage: credcache <command> [options]

Commands:
  process   print credentials in the AWS credential_process format, from the cache
  serve     answer every SDK on the host over loopback HTTP (the ECS container-credentials
            protocol), from the cache: no process start per call
  inspect   list cached entries: source, truncated key id, expiry, refresh window
  clear     remove cached entries
  prune     remove expired and unreadable entries

Run "credcache <command> --help" for a command's options and examples.

Example ~/.aws/config (any AWS SDK or the AWS CLI then shares one fetch per rotation):
  [default]
  credential_process = credcache process --source imds --cache file:///var/cache/credcache

${EXIT_CODES}
`;

const PROCESS = `credcache process - credentials for credential_process, from the shared cache

Usage: credcache process --source SOURCE (--cache URL | --config FILE [--store NAME]) [options]

Prints {"Version":1,"AccessKeyId",...,"Expiration"} on stdout. On a miss one process on the
host fetches from the source under the store's lock; every other process waits for it and
reuses the result. With 25 min or less left, a run prints the cached set at once and, if no
other attempt is live, refreshes before it exits; nobody waits on a valid set.

Sources:
  imds                   EC2 instance profile (IMDSv2); the key is scoped to this host
  container              ECS, EKS Pod Identity, loopback servers (AWS_CONTAINER_CREDENTIALS_*_URI,
                         AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE])
  profile:NAME           a profile in ~/.aws/config (assume-role, SSO, ...); never one whose
                         credential_process is credcache itself
  assume-role:ARN        STS AssumeRole with the default credential chain

Options:
  --source SOURCE        where credentials come from on a miss (required)
  --timeout MS           imds / container: per-request timeout (default 1000)
  --retries N            imds / container: retries after the first attempt (default 2, as in
                         core's presets; the SDK's own default is 0)
  --session-name NAME    assume-role: RoleSessionName (default credcache)
  --duration SECONDS     assume-role: DurationSeconds
  --region REGION        assume-role: STS region (default: the SDK's region chain)
  --min-validity SECONDS never print credentials with less time left than this (default 360:
                         SDKs treat credentials with under 5 min left as expired). Below it a
                         run waits for a refresh; if the source has nothing newer, it fails.
  --cache-timeout MS     longest wait for one store call, lock included, before going on
                         without the store (default 3000)
  -h, --help             this help

${STORE_OPTIONS}

Examples:
  credcache process --source imds --cache file:///var/cache/credcache
  credcache process --source imds --cache sqlite:///var/cache/credcache.db --timeout 2000 --retries 2
  credcache process --source assume-role:arn:aws:iam::123456789012:role/worker --cache redis://127.0.0.1:6379
  CREDCACHE_CONFIG=/etc/credcache.json credcache process --source container --store redis

In ~/.aws/config:
  [profile app]
  credential_process = credcache process --source imds --cache file:///var/cache/credcache

Errors are one line on stderr and never contain a secret.
${EXIT_CODES}
`;

const SERVE = `credcache serve - a loopback container-credentials endpoint, from the shared cache

Usage: credcache serve (--source SOURCE | --credentials FILE) (--cache URL | --config FILE [--store NAME])
                       --token-file PATH [--listen 127.0.0.1:PORT] [options]

Answers GET /creds/NAME with {"AccessKeyId","SecretAccessKey","Token","Expiration","AccountId"},
the document every AWS SDK and the AWS CLI read from ECS. Point them at it with:
  AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:9911/creds/default
  AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=/run/credcache/token
Credentials come from memory, the shared store is kept current for other processes, and
each set is refreshed in the background before it expires: one source fetch per rotation.

Every /creds request must carry the token, exactly as the SDKs send it (the Authorization
header holds the token file's content). Requests through a proxy (X-Forwarded-For, Forwarded,
Via) or with a Host header other than the listen address are refused.
GET /healthz (200 when every credential holds a valid set) and GET /metrics (Prometheus text)
need no token and show no secret.

Options:
  --source SOURCE        served as /creds/default: imds, container, profile:NAME, assume-role:ARN
  --credentials FILE     several named credentials instead, from a JSON file:
                         { "default": "web",
                           "credentials": { "web": { "source": "imds" },
                                            "reports": { "source": "assume-role:arn:aws:iam::123456789012:role/reports",
                                                         "session-name": "reports", "region": "eu-west-1" } } }
                         Each entry takes source, timeout, retries, session-name, duration, region.
  --listen HOST:PORT     loopback only: 127.0.0.0/8 or [::1] (default 127.0.0.1:9911; port 0 picks one)
  --token-file PATH      the token clients send; created (64 hex characters, mode 600) when missing.
                         Default under systemd: $RUNTIME_DIRECTORY/token. Its directory and every one
                         above must not be writable by other users.
  --token-group GROUP    create the token file 640 for this group (e.g. the PHP-FPM pool's group)
  --ecs-agent            answer the ECS agent's protocol instead, for clients that send no token
                         (AsyncAws before 1.23, Ruby before 3.188): GET /v2/credentials/ID on
                         169.254.170.2:80 (default --listen; it must be on lo) or on a loopback
                         port behind DNAT, Host 169.254.170.2 accepted. Each ID is derived from
                         the token file's secret; the path is the credential, never logged.
  --print-env NAME       with --ecs-agent: print AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=... for
                         credential NAME (for a systemd EnvironmentFile=) and exit
  --timeout, --retries, --session-name, --duration, --region
                         source options, as for "credcache process"
  --cache-timeout MS     longest wait for one store call before going on without it (default 1000)
  -h, --help             this help

${STORE_OPTIONS}

Stops on SIGTERM or SIGINT: no new connections, requests in flight finish, exit 0. With
NOTIFY_SOCKET set (systemd Type=notify, NotifyAccess=all) it reports READY=1 once the
credentials are loaded. Log lines go to stderr and never contain a secret or the token.

Examples:
  credcache serve --source imds --cache file:///var/cache/credcache --token-file /run/credcache/token
  credcache serve --credentials /etc/credcache/serve.json --cache redis://127.0.0.1:6379 \\
    --token-file /run/credcache/token --token-group www-data
  credcache serve --ecs-agent --source imds --cache file:///var/cache/credcache \\
    --token-file /run/credcache/token --print-env default > /etc/credcache/ecs.env

${EXIT_CODES}
`;

const INSPECT = `credcache inspect - show what the cache holds

Usage: credcache inspect (--cache URL | --config FILE [--store NAME]) [--key KEY]... [--json]

For each entry: key, source, truncated access key id, account, expiry, time left and the refresh
window (fresh > 15 min left, advisory 10-15 min, mandatory < 10 min, expired). Secrets are never
printed.

Stores that can list their keys show every entry. Others show the keys credcache uses on this
host (the imds and container keys, profile:$AWS_PROFILE, aws_cached_credentials) plus those
asked for with --key or --source.

Options:
  --key KEY          also look at this key (repeatable)
  --source SOURCE    also look at the key this source uses, e.g. --source profile:deploy (repeatable)
  --json             machine-readable output
  -h, --help         this help

${STORE_OPTIONS}

Examples:
  credcache inspect --cache file:///var/cache/credcache
  credcache inspect --cache redis://127.0.0.1:6379 --json
  credcache inspect --config /etc/credcache.json --store sqlite --key aws_cached_credentials

${EXIT_CODES}
`;

const CLEAR = `credcache clear - remove cached credentials

Usage: credcache clear [KEY]... [--source SOURCE]... (--cache URL | --config FILE [--store NAME])

With keys (or --source): removes those entries. Without: removes every entry, which needs a
store that can list its keys; for other stores name the keys ("credcache inspect" shows them).
The next "credcache process" fetches from the source again.

Options:
  --source SOURCE    remove the entry this source uses, e.g. --source imds (repeatable)
  -h, --help         this help

${STORE_OPTIONS}

Examples:
  credcache clear --source imds --cache file:///var/cache/credcache
  credcache clear aws_cached_credentials --cache sqlite:///var/cache/credcache.db
  credcache clear --cache redis://127.0.0.1:6379          # everything (the store lists its keys)

${EXIT_CODES}
`;

const PRUNE = `credcache prune - remove expired and unreadable entries

Usage: credcache prune (--cache URL | --config FILE [--store NAME]) [--key KEY]... [--source SOURCE]...

Uses the store's own prune when it has one. Otherwise reads each entry it can find (every key
when the store can list them; else the well-known keys plus --key / --source) and removes the
ones that have expired or are not valid credential records.

Options:
  --key KEY          also check this key (repeatable)
  --source SOURCE    also check the key this source uses (repeatable)
  -h, --help         this help

${STORE_OPTIONS}

Examples:
  credcache prune --cache sqlite:///var/cache/credcache.db
  credcache prune --config /etc/credcache.json --store file

${EXIT_CODES}
`;

const TEXTS: Record<string, string> = {
  process: PROCESS,
  serve: SERVE,
  inspect: INSPECT,
  clear: CLEAR,
  prune: PRUNE,
};

/** Help for a command, or the overview. */
export function helpText(command?: string): string {
  return (command !== undefined && TEXTS[command]) || TOP;
}
