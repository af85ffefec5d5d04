// Model versions compared: semantic versions (semver, the npm package) where both sides are one,
// e.g. 1.10.0 > 1.9.2 and 1.1.0-rc.1 < 1.1.0; other version strings fall back to a plain text order,
// after every semantic version.

import semver from 'semver';

export function isSemver(v: string): boolean {
  return semver.valid(v) !== null;
}

/** Negative when a < b, 0 when equal (build metadata is ignored, as semver says), positive when a > b. */
export function compareVersions(a: string, b: string): number {
  const sa = semver.valid(a);
  const sb = semver.valid(b);
  if (sa && sb) return semver.compare(sa, sb);
  if (sa) return -1;
  if (sb) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}
