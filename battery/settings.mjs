// The battery's knobs, all read from the environment in one place:
//   BATTERY_SEED, BATTERY_KEEP, BATTERY_BUDGET_MS, BATTERY_REDIS_URL, BATTERY_STORM_WRITERS,
//   BATTERY_STORM_WRITES, BATTERY_STORM_CAP_MS, BATTERY_UNUSABLE_WORKERS, BATTERY_DEBUG;
// and the ones run.mjs and the harness pass down: BATTERY_OUT, BATTERY_RUN_ID, BATTERY_DEADLINE,
// BATTERY_CHILD_DEADLINE, BATTERY_UMASK. The battery is not a turbo task: none affects a build.

/** The value of a battery environment variable, or undefined. */
export function setting(name) {
  return process.env[name];
}
