// Types of cluster.mjs: a private 6-node Redis Cluster for tests and benchmarks.
export interface ClusterOptions {
  /** TLS only (no plain port), the cluster bus and replication included, with a private CA. */
  tls?: boolean;
  /** `cluster-node-timeout`: how long a master may be silent before its replica takes over. @default 2000 */
  nodeTimeoutMs?: number;
}

export interface RedisCluster {
  /** The client port of each node (the TLS port with `tls`), masters first as created. */
  readonly ports: number[];
  /** `redis://127.0.0.1:<first port>` (`rediss://localhost:...` with `tls`): one seed, as a managed endpoint gives. */
  readonly url: string;
  /** The private CA's certificate (PEM) with `tls`: trust it with NODE_EXTRA_CA_CERTS. */
  readonly caFile: string | undefined;
  /** Runs redis-cli against one node (TLS flags added) and returns its output. */
  cli(port: number, ...args: string[]): Promise<string>;
  /** The node serving `slot` as master now, and one of its replicas. */
  ownerOf(slot: number): Promise<{ master: number; replica: number | undefined }>;
  /** SIGKILLs one node. */
  kill(port: number): void;
  /** Resolves once every live node reports cluster_state:ok and agrees on who serves every slot. */
  settled(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts a 6-node cluster (3 masters, 3 replicas) and resolves once it serves every slot. */
export function startCluster(options?: ClusterOptions): Promise<RedisCluster>;

/** Whether redis-server is on PATH: without it, skip with one line (fail when CI is set). */
export const redisServerOnPath: boolean;
