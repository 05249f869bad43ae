/**
 * CSV export, pure (no I/O), so both the server and the browser bundle use
 * it (history.ts re-exports it; the island imports it from here because
 * history.ts pulls in node:sqlite).
 *
 * @example
 * ```ts
 * const text = toCsv(["ts", "temp_c"], [["2026-01-01T00:00:00Z", 55.2]]);
 * ```
 */

/**
 * RFC 4180 CSV of rows (header first). Text that a spreadsheet would run as
 * a formula (=, +, -, @ first) gets a leading apostrophe; numbers stay numbers.
 */
export function toCsv(
  header: string[],
  rows: (string | number | null)[][],
): string {
  const cell = (v: string | number | null) => {
    if (v === null) return "";
    if (typeof v === "number") return String(v);
    const s = /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
    return /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  return [header, ...rows].map((r) => r.map(cell).join(",")).join("\r\n") +
    "\r\n";
}
