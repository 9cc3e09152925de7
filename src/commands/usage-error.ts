/**
 * A mistake in how crew was called (a flag, a CREW_* variable, the config file, an
 * address in use): the CLI prints its message as one line, without a stack or a code.
 */
export class UsageError extends Error {
  override name = "UsageError";
}
