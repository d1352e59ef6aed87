// Time ranges: the presets every page offers, and the bucket each is drawn in (few enough
// points that one time-series answer stays small: at most ~170 buckets).

export const PRESETS = [
  ["1h", "Last hour", 3600, "minute"],
  ["24h", "Last 24 hours", 86400, "hour"],
  ["7d", "Last 7 days", 7 * 86400, "hour"],
  ["30d", "Last 30 days", 30 * 86400, "day"],
];

export const BUCKET_SECONDS = { minute: 60, hour: 3600, day: 86400 };

export function bucketFor(seconds) {
  if (seconds <= 6 * 3600) return "minute";
  if (seconds <= 14 * 86400) return "hour";
  return "day";
}

/** {start, end, bucket} in epoch seconds for a preset name ("24h") or a "from..to" custom range. */
export function resolveRange(name, now = Date.now() / 1000) {
  const custom = /^(\d+)\.\.(\d+)$/.exec(name || "");
  if (custom) {
    const start = Number(custom[1]);
    const end = Number(custom[2]);
    return { name, start, end, bucket: bucketFor(end - start) };
  }
  const preset = PRESETS.find((p) => p[0] === name) || PRESETS[1];
  const end = Math.ceil(now);
  return { name: preset[0], start: end - preset[2], end, bucket: preset[3] };
}
