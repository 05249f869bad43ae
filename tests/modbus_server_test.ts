import assert from "node:assert/strict";
import {
  answerFrame,
  encodeResponse,
  handlePdu,
  MbapDecoder,
  type RegisterBank,
} from "../modbus_server.ts";

/** 20 words 100..119; only address 7 writable, 0..5000. */
function bank(): RegisterBank & { words: number[] } {
  const words = Array.from({ length: 20 }, (_, i) => 100 + i);
  return {
    words,
    size: 20,
    read: (start, count) => words.slice(start, start + count),
    checkWrite(start, values) {
      for (let i = 0; i < values.length; i++) {
        if (start + i !== 7) return 2;
      }
      return values.every((v) => v <= 5000) ? 0 : 3;
    },
    write(start, values) {
      values.forEach((v, i) => words[start + i] = v);
    },
  };
}

const hex = (u: Uint8Array) =>
  [...u].map((b) => b.toString(16).padStart(2, "0")).join(" ");
const pdu = (...b: number[]) => Uint8Array.from(b);

Deno.test("handlePdu: FC03 and FC04 read the same words", () => {
  const b = bank();
  assert.equal(hex(handlePdu(b, pdu(3, 0, 0, 0, 2))), "03 04 00 64 00 65");
  assert.equal(hex(handlePdu(b, pdu(4, 0, 18, 0, 2))), "04 04 00 76 00 77");
  const all = handlePdu(b, pdu(3, 0, 0, 0, 20));
  assert.equal(all.length, 42);
  assert.equal(all[1], 40);
});

Deno.test("handlePdu: read exceptions 02 and 03", () => {
  const b = bank();
  const exc = (...req: number[]) => hex(handlePdu(b, pdu(...req)));
  assert.equal(exc(3, 0, 19, 0, 2), "83 02", "beyond 20");
  assert.equal(exc(3, 0, 20, 0, 1), "83 02");
  assert.equal(exc(3, 0xff, 0xff, 0, 1), "83 02");
  assert.equal(exc(4, 0, 0, 0, 0), "84 03", "quantity 0");
  assert.equal(exc(3, 0, 0, 0, 126), "83 03", "quantity 126");
  assert.equal(exc(3, 0, 0, 0, 125), "83 02", "125 is legal, but out of range");
  assert.equal(exc(3, 0, 0, 0), "83 03", "truncated");
  assert.equal(exc(3, 0, 0, 0, 1, 9), "83 03", "trailing byte");
});

Deno.test("handlePdu: FC06 writes only register 7 within range", () => {
  const b = bank();
  assert.equal(hex(handlePdu(b, pdu(6, 0, 7, 0x0f, 0xa0))), "06 00 07 0f a0");
  assert.equal(b.words[7], 4000);
  assert.equal(hex(handlePdu(b, pdu(6, 0, 6, 0, 1))), "86 02");
  assert.equal(hex(handlePdu(b, pdu(6, 0, 20, 0, 1))), "86 02");
  assert.equal(hex(handlePdu(b, pdu(6, 0, 7, 0x13, 0x89))), "86 03");
  assert.equal(hex(handlePdu(b, pdu(6, 0, 7, 0))), "86 03");
  assert.equal(b.words[7], 4000);
  assert.equal(b.words[6], 106);
});

Deno.test("handlePdu: FC16 is all or nothing", () => {
  const b = bank();
  assert.equal(
    hex(handlePdu(b, pdu(16, 0, 7, 0, 1, 2, 0x03, 0xe8))),
    "10 00 07 00 01",
  );
  assert.equal(b.words[7], 1000);
  const before = [...b.words];
  const exc = (...req: number[]) => hex(handlePdu(b, pdu(...req)));
  assert.equal(exc(16, 0, 7, 0, 2, 4, 0, 1, 0, 1), "90 02", "7..8");
  assert.equal(exc(16, 0, 6, 0, 2, 4, 0, 1, 0, 1), "90 02", "6..7");
  assert.equal(exc(16, 0, 7, 0, 1, 2, 0xff, 0xff), "90 03");
  assert.equal(exc(16, 0, 19, 0, 2, 4, 0, 1, 0, 1), "90 02");
  assert.equal(exc(16, 0, 7, 0, 0, 0), "90 03", "quantity 0");
  assert.equal(exc(16, 0, 7, 0, 1, 3, 0, 1, 0), "90 03", "byte count");
  assert.equal(exc(16, 0, 7, 0, 1, 2, 0), "90 03", "short data");
  assert.equal(exc(16, 0, 7, 0, 124), "90 03", "short header");
  const big = [16, 0, 0, 0, 124, 248, ...new Array(248).fill(0)];
  assert.equal(exc(...big), "90 03", "quantity 124");
  assert.deepEqual(b.words, before);
});

Deno.test("handlePdu: unknown function codes get 01", () => {
  const b = bank();
  for (const fc of [1, 2, 5, 15, 0x17, 0x2b, 0x41, 0x7f, 0x83, 0xff, 0]) {
    const r = handlePdu(b, pdu(fc, 0, 0, 0, 1));
    assert.equal(hex(r), hex(pdu((fc | 0x80) & 0xff, 1)), `fc ${fc}`);
  }
  assert.equal(hex(handlePdu(b, pdu())), "80 01");
});

Deno.test("handlePdu: a throwing bank is exception 04", () => {
  const b = {
    ...bank(),
    read: () => {
      throw new Error("boom");
    },
  };
  assert.equal(hex(handlePdu(b, pdu(3, 0, 0, 0, 1))), "83 04");
});

Deno.test("unit ids: configured, 0 and 255 served; others 0x0B", () => {
  const b = bank();
  const req = (unitId: number) =>
    hex(
      answerFrame(b, 1, { transactionId: 1, unitId, pdu: pdu(3, 0, 0, 0, 1) }),
    );
  assert.equal(req(1), "03 02 00 64");
  assert.equal(req(0), "03 02 00 64");
  assert.equal(req(255), "03 02 00 64");
  assert.equal(req(2), "83 0b");
  assert.equal(req(247), "83 0b");
});

Deno.test("encodeResponse builds the MBAP header", () => {
  assert.equal(
    hex(encodeResponse(0x1234, 1, pdu(3, 2, 0, 7))),
    "12 34 00 00 00 05 01 03 02 00 07",
  );
});

Deno.test("MbapDecoder buffers partial frames, splits pipelined ones", () => {
  const frame = [0, 9, 0, 0, 0, 6, 1, 3, 0, 0, 0, 10];
  const d = new MbapDecoder();
  // Byte by byte.
  for (let i = 0; i < frame.length - 1; i++) {
    assert.deepEqual(d.push(pdu(frame[i])), []);
  }
  const [f] = d.push(pdu(frame[frame.length - 1]));
  assert.equal(f.transactionId, 9);
  assert.equal(f.unitId, 1);
  assert.equal(hex(f.pdu), "03 00 00 00 0a");
  assert.equal(d.pending, 0);
  // Three at once plus half of a fourth.
  const three = d.push(pdu(...frame, ...frame, ...frame, ...frame.slice(0, 5)));
  assert.equal(three.length, 3);
  assert.equal(d.pending, 5);
  assert.equal(d.push(pdu(...frame.slice(5))).length, 1);
  assert.equal(d.error, null);
});

Deno.test("MbapDecoder flags impossible headers and stops", () => {
  const cases: [number[], RegExp][] = [
    [[0, 1, 0, 0, 0, 0, 1, 3], /length 0/],
    [[0, 1, 0, 0, 0, 1, 1], /length 1/],
    [[0, 1, 0, 0, 0, 255], /length 255/],
    [[0, 1, 0, 0, 0xff, 0xff], /length 65535/],
    [[0, 1, 0, 1], /protocol id 1/],
  ];
  for (const [bytes, re] of cases) {
    const d = new MbapDecoder();
    const good = [0, 2, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1];
    const frames = d.push(pdu(...good, ...bytes));
    assert.equal(frames.length, 1, "the good frame before it still counts");
    assert.match(d.error?.message ?? "", re);
    assert.deepEqual(d.push(pdu(...good)), [], "ignores input afterwards");
  }
  // 254 is the largest legal length.
  const d = new MbapDecoder();
  const max = [0, 1, 0, 0, 0, 254, 1, ...new Array(253).fill(0x41)];
  assert.equal(d.push(Uint8Array.from(max)).length, 1);
  assert.equal(d.error, null);
});
