import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { hostname as osHostname } from "node:os";
import { join } from "node:path";

/**
 * What names this host in instance and container keys, and how far that name can be trusted:
 *
 * - `instance-id`: the EC2 instance id from DMI `board_asset_tag` (Nitro). Unique: two
 *   instances never share it.
 * - `xen-uuid`: the Xen hypervisor uuid (`/sys/hypervisor/uuid`, starts with `ec2` on EC2 Xen
 *   instances). Unique per instance.
 * - `machine-id`: systemd's `/etc/machine-id` plus the host name. Unique as long as each host's
 *   id was generated on its first boot; hosts cloned from an image that ships a fixed id
 *   are told apart only by their host names.
 * - `hostname`: the host name alone. Guarantees nothing: two hosts with the same name share it.
 */
export type HostIdentityKind = "instance-id" | "xen-uuid" | "machine-id" | "hostname";

export interface HostIdentity {
  kind: HostIdentityKind;
  id: string;
}

/** Where {@link readHostIdentity} looks. Both exist for tests and for containers that mount the host's files elsewhere. */
export interface HostIdentityOptions {
  /** Directory that stands for `/` when the identity files are read. @default "/" */
  root?: string;
  /** @default os.hostname() */
  hostname?: string;
}

const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;
const XEN_EC2_UUID = /^ec2[0-9a-f]{5}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MACHINE_ID = /^[0-9a-f]{32}$/;

/** A small text file's trimmed content, or undefined. Never blocks on a FIFO, never reads a huge file. */
export function readSmallFile(path: string, maxBytes = 4096): string | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    if (!fstatSync(fd).isFile()) return undefined;
    const buffer = Buffer.alloc(maxBytes + 1);
    const n = readSync(fd, buffer, 0, buffer.length, 0);
    if (n > maxBytes) return undefined;
    return buffer.toString("utf8", 0, n).trim();
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

let cached: HostIdentity | undefined;

/**
 * This host's identity for cache keys, read from local files only (no IMDS call): the
 * EC2 instance id (DMI `board_asset_tag`), then the Xen hypervisor uuid, then
 * `/etc/machine-id` with the host name, then the host name. See {@link HostIdentityKind}
 * for what each guarantees. Read once per process when called without options.
 *
 * @example
 * ```ts
 * readHostIdentity(); // { kind: "instance-id", id: "i-0123456789abcdef0" } on a Nitro instance
 * ```
 */
export function readHostIdentity(options: HostIdentityOptions = {}): HostIdentity {
  const usesDefaults = options.root === undefined && options.hostname === undefined;
  if (usesDefaults && cached) return cached;
  const root = options.root ?? "/";
  const name = options.hostname ?? osHostname();
  const assetTag = readSmallFile(join(root, "sys/devices/virtual/dmi/id/board_asset_tag"));
  const xen = readSmallFile(join(root, "sys/hypervisor/uuid"));
  const machineId = readSmallFile(join(root, "etc/machine-id"));
  let identity: HostIdentity;
  if (assetTag && INSTANCE_ID.test(assetTag)) identity = { kind: "instance-id", id: assetTag };
  else if (xen && XEN_EC2_UUID.test(xen)) identity = { kind: "xen-uuid", id: xen.toLowerCase() };
  else if (machineId && MACHINE_ID.test(machineId))
    identity = { kind: "machine-id", id: `${machineId}/${name}` };
  else identity = { kind: "hostname", id: name };
  if (usesDefaults) cached = identity;
  return identity;
}
