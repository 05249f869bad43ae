/**
 * Read planning: merge the register addresses a map needs into the fewest
 * block reads (FC03), each at most MAX_READ_QUANTITY (125) registers,
 * optionally reading across small gaps of unneeded registers when that saves
 * a request. Pure; no I/O.
 *
 * The greedy sweep over sorted addresses is optimal for this problem: a
 * block always starts at the lowest address not yet covered, and extending
 * it as far as the gap and size limits allow never increases the number of
 * blocks needed for the rest.
 *
 * @example
 * ```ts
 * planReads([0, 1, 2, 5, 300]);             // [{start:0,count:3},{start:5,count:1},{start:300,count:1}]
 * planReads([0, 1, 2, 5, 300], { maxGap: 4 }); // [{start:0,count:6},{start:300,count:1}]
 * ```
 */
import { MAX_READ_QUANTITY, REGISTER_MAP } from "./registers.ts";

export interface ReadBlock {
  start: number;
  count: number;
}

export interface PlanOptions {
  /** Largest block, registers; default and upper bound 125 (Modbus spec). */
  maxCount?: number;
  /**
   * Most unneeded registers a block may read across to avoid one more
   * request; default 0 (read only what is needed). Only safe where the gap
   * registers exist on the device (reading them must not raise exception 02).
   */
  maxGap?: number;
}

/** Highest register address (protocol addresses are 16-bit). */
const MAX_ADDRESS = 0xffff;

/** Merge addresses (any order, duplicates allowed) into block reads. */
export function planReads(
  addresses: Iterable<number>,
  opts: PlanOptions = {},
): ReadBlock[] {
  const maxCount = opts.maxCount ?? MAX_READ_QUANTITY;
  const maxGap = opts.maxGap ?? 0;
  if (
    !Number.isInteger(maxCount) || maxCount < 1 || maxCount > MAX_READ_QUANTITY
  ) {
    throw new RangeError(
      `maxCount must be an integer in 1..${MAX_READ_QUANTITY}`,
    );
  }
  if (!Number.isInteger(maxGap) || maxGap < 0) {
    throw new RangeError("maxGap must be a non-negative integer");
  }
  const sorted = [...new Set(addresses)].sort((a, b) => a - b);
  for (const a of sorted) {
    if (!Number.isInteger(a) || a < 0 || a > MAX_ADDRESS) {
      throw new RangeError(`address ${a} is not in 0..${MAX_ADDRESS}`);
    }
  }
  const blocks: ReadBlock[] = [];
  let cur: ReadBlock | null = null;
  for (const a of sorted) {
    if (cur) {
      const end = cur.start + cur.count; // first address after the block
      const gap = a - end;
      if (gap <= maxGap && a - cur.start + 1 <= maxCount) {
        cur.count = a - cur.start + 1;
        continue;
      }
    }
    cur = { start: a, count: 1 };
    blocks.push(cur);
  }
  return blocks;
}

/** Addresses a register map needs: every published register and device_id. */
export function neededAddresses(
  map: readonly { address: number; field: string | null; name: string }[] =
    REGISTER_MAP,
): number[] {
  return map
    .filter((r) => r.field !== null || r.name === "device_id")
    .map((r) => r.address);
}

/** Registers a plan reads (needed ones plus bridged gaps). */
export function plannedRegisters(plan: readonly ReadBlock[]): number {
  return plan.reduce((n, b) => n + b.count, 0);
}
