"""pymodbus client against our simulator: prints one JSON object of results.

Usage: /usr/bin/python3 client.py PORT
"""
import json
import sys

from pymodbus.client import ModbusTcpClient

client = ModbusTcpClient("127.0.0.1", port=int(sys.argv[1]), timeout=3)
if not client.connect():
    sys.exit("cannot connect")


def exc(r):
    return getattr(r, "exception_code", None)


out = {
    "fc03": client.read_holding_registers(0, 20, slave=1).registers,
    "fc04": client.read_input_registers(0, 10, slave=1).registers,
}
r = client.write_register(7, 4000, slave=1)
out["fc06_echo"] = [r.address, r.value]
r = client.write_registers(7, [3500], slave=1)
out["fc16_echo"] = [r.address, r.count]
out["setpoint_after"] = client.read_holding_registers(7, 1, slave=1).registers
out["exceptions"] = {
    "read past 19": exc(client.read_holding_registers(19, 2, slave=1)),
    "quantity 126": exc(client.read_holding_registers(0, 126, slave=1)),
    "write read-only": exc(client.write_register(0, 5, slave=1)),
    "setpoint 6000": exc(client.write_register(7, 6000, slave=1)),
    "FC16 across read-only": exc(client.write_registers(6, [1, 2], slave=1)),
    "FC01 read coils": exc(client.read_coils(0, 1, slave=1)),
}
out["setpoint_unchanged"] = client.read_holding_registers(7, 1, slave=1).registers
client.close()
print(json.dumps(out))
