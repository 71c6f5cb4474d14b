import { homedir } from "node:os";
import { isAbsolute, join } from "node:path";

/** `$XDG_CACHE_HOME/credcache`, or `~/.cache/credcache` when that is unset or relative. */
export function defaultCacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg && isAbsolute(xdg) ? xdg : join(homedir(), ".cache"), "credcache");
}
