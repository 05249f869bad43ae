/**
 * The test ports themselves: a port handed to a test must not be one an
 * outgoing connection can be given (the kernel's ephemeral range), nor one
 * handed out before in this process.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { ephemeralPortRange, freePort, freePortRun } from "./_support.ts";

Deno.test("freePort: distinct ports below the ephemeral range, each bindable", async () => {
  const range = ephemeralPortRange();
  const ports: number[] = [];
  for (let i = 0; i < 200; i++) ports.push(await freePort());
  assert.equal(new Set(ports).size, ports.length, "a port handed out twice");
  if (range) {
    for (const p of ports) assert.ok(p < range[0], `${p} is ephemeral`);
  }
  // The last one really is free: we can listen on it.
  const srv = net.createServer();
  await new Promise<void>((resolve, reject) => {
    srv.on("error", reject);
    srv.listen(ports.at(-1), "127.0.0.1", () => resolve());
  });
  await new Promise((r) => srv.close(r));
});

Deno.test("freePortRun: n consecutive ports, never overlapping an earlier hand-out", async () => {
  const taken = new Set<number>();
  for (let i = 0; i < 50; i++) {
    const base = await freePortRun(5);
    for (let k = 0; k < 5; k++) {
      assert.ok(!taken.has(base + k), `port ${base + k} handed out twice`);
      taken.add(base + k);
    }
  }
});
