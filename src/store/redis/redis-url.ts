/**
 * The --redis URL as logs, errors and --print-config show it. Its own module, without
 * ioredis: `crew start` loads ioredis only when it joins a Redis.
 */

/** `url` with any password replaced by `***`; a URL that does not parse is not shown at all. */
export function withoutPassword(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(the --redis URL)";
  }
}
