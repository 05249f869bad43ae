/**
 * An independent Modbus client for tests (npm:modbus-serial, not our own
 * ModbusLink), so the simulator is checked by a second implementation.
 */
import Modbus from "modbus-serial";
import { ADDR, scaleRegisters } from "../registers.ts";

async function withClient<T>(
  port: number,
  fn: (c: InstanceType<typeof Modbus.default>) => Promise<T>,
): Promise<T> {
  const c = new Modbus.default();
  await c.connectTCP("127.0.0.1", { port });
  c.setID(1);
  c.setTimeout(1000);
  try {
    return await fn(c);
  } finally {
    await new Promise<void>((r) => c.destroy(() => r()));
  }
}

/** FC06 the setpoint register, as an operator tool would. */
export function writeSetpoint(port: number, watts: number): Promise<void> {
  return withClient(port, async (c) => {
    await c.writeRegister(ADDR.setpoint, watts);
  });
}

/** FC03 registers 0..9, scaled. */
export function readScaled(port: number) {
  return withClient(
    port,
    async (c) => scaleRegisters((await c.readHoldingRegisters(0, 10)).data),
  );
}
