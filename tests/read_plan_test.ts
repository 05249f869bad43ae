/** Read planning: fewest block reads, at most 125 registers each, gaps optional. */
import assert from "node:assert/strict";
import { neededAddresses, plannedRegisters, planReads } from "../read_plan.ts";
import {
  MAX_READ_QUANTITY,
  POLL_BLOCK,
  REGISTER_MAP,
  REGISTER_MAPS,
} from "../registers.ts";

Deno.test("read plan: contiguous addresses become one block", () => {
  assert.deepEqual(planReads([0, 1, 2, 3]), [{ start: 0, count: 4 }]);
  assert.deepEqual(planReads([3, 1, 2, 0, 2]), [{ start: 0, count: 4 }]);
});

Deno.test("read plan: gaps split blocks unless bridging is allowed", () => {
  assert.deepEqual(planReads([0, 1, 2, 5, 300]), [
    { start: 0, count: 3 },
    { start: 5, count: 1 },
    { start: 300, count: 1 },
  ]);
  assert.deepEqual(planReads([0, 1, 2, 5, 300], { maxGap: 2 }), [
    { start: 0, count: 6 },
    { start: 300, count: 1 },
  ]);
  // A gap of exactly maxGap + 1 is not bridged.
  assert.deepEqual(planReads([0, 4], { maxGap: 2 }), [
    { start: 0, count: 1 },
    { start: 4, count: 1 },
  ]);
  assert.deepEqual(planReads([0, 4], { maxGap: 3 }), [{ start: 0, count: 5 }]);
});

Deno.test("read plan: never more than 125 registers per block", () => {
  const all = Array.from({ length: 300 }, (_, i) => i);
  const plan = planReads(all);
  assert.deepEqual(plan, [
    { start: 0, count: 125 },
    { start: 125, count: 125 },
    { start: 250, count: 50 },
  ]);
  // Exactly 125 fits one block; 126 does not.
  assert.equal(planReads([0, 124]).length, 2);
  assert.equal(planReads([0, 124], { maxGap: 200 }).length, 1);
  assert.equal(planReads([0, 125], { maxGap: 200 }).length, 2);
  assert.deepEqual(planReads([0, 1, 2, 3], { maxCount: 2 }), [
    { start: 0, count: 2 },
    { start: 2, count: 2 },
  ]);
});

Deno.test("read plan: optimal on random inputs (no block could be merged)", () => {
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let t = 0; t < 200; t++) {
    const maxGap = Math.floor(rnd() * 5);
    const addrs = Array.from(
      { length: 1 + Math.floor(rnd() * 80) },
      () => Math.floor(rnd() * 600),
    );
    const plan = planReads(addrs, { maxGap });
    const need = new Set(addrs);
    // Covers every address, within bounds, sorted, non-overlapping.
    for (const a of need) {
      assert.ok(plan.some((b) => a >= b.start && a < b.start + b.count));
    }
    for (let i = 0; i < plan.length; i++) {
      const b = plan[i];
      assert.ok(b.count >= 1 && b.count <= MAX_READ_QUANTITY);
      assert.ok(need.has(b.start) && need.has(b.start + b.count - 1));
      if (i > 0) {
        const prev = plan[i - 1];
        const end = prev.start + prev.count;
        assert.ok(b.start > end - 1);
        // Not mergeable: either the gap is too big or the union too long.
        assert.ok(
          b.start - end > maxGap ||
            b.start + b.count - prev.start > MAX_READ_QUANTITY,
        );
      }
    }
  }
});

Deno.test("read plan: the built-in inverter map needs one read inside POLL_BLOCK", () => {
  const need = neededAddresses(REGISTER_MAP);
  assert.deepEqual(need, [0, 1, 2, 3, 4, 5, 6, 7]);
  const plan = planReads(need);
  assert.equal(plan.length, 1);
  assert.ok(plan[0].start >= POLL_BLOCK.start);
  assert.ok(
    plan[0].start + plan[0].count <= POLL_BLOCK.start + POLL_BLOCK.count,
  );
  assert.equal(plannedRegisters(plan), 8);
});

Deno.test("read plan: bad input is rejected", () => {
  assert.deepEqual(planReads([]), []);
  assert.throws(() => planReads([-1]), /address -1/);
  assert.throws(() => planReads([65536]), /address 65536/);
  assert.throws(() => planReads([1.5]), /address 1.5/);
  assert.throws(() => planReads([1], { maxCount: 126 }), /maxCount/);
  assert.throws(() => planReads([1], { maxCount: 0 }), /maxCount/);
  assert.throws(() => planReads([1], { maxGap: -1 }), /maxGap/);
});

Deno.test("the poller's plan for the built-in map is the documented single block 0..9", () => {
  // device_poller.ts plans over every register of the device's map (they
  // all exist, so unpublished ones may be read across); faults_test.ts checks
  // the requests on the wire.
  const plan = planReads(REGISTER_MAPS.inverter.map((r) => r.address));
  assert.deepEqual(plan, [{
    start: POLL_BLOCK.start,
    count: POLL_BLOCK.count,
  }]);
});
