/**
 * Waits until `work` has settled, or `maxMs` at most: a source that never answers must not
 * hang a shutdown. The timer is unref'd, so it never keeps a process up on its own.
 */
export async function settleWithin(work: Array<Promise<unknown> | undefined>, maxMs: number): Promise<void> {
  let wake: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.allSettled(work),
    new Promise((resolve) => {
      wake = setTimeout(resolve, maxMs);
      wake.unref?.();
    }),
  ]);
  clearTimeout(wake);
}
