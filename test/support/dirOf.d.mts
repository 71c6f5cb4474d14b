/** A directory `name` in `parent`, owned by `uid` (and group `gid`), with exactly `mode`. */
export function dirOf(parent: string, name: string, uid: number, mode: number, gid?: number): string;
