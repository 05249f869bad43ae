"""A pymodbus TCP server with the inverter register map, as a device for our
poller. Registers 0..19 (holding, FC04 mirrors them); any value is writable.

Usage: /usr/bin/python3 server.py PORT TEMP_X10
"""
import asyncio
import sys

from pymodbus.datastore import (
    ModbusSequentialDataBlock,
    ModbusServerContext,
    ModbusSlaveContext,
)
from pymodbus.server import StartAsyncTcpServer

port, temp = int(sys.argv[1]), int(sys.argv[2])
registers = [1001, 1, 3000, 2300, 1304, temp, 720, 3000, 0, 0] + [0] * 10
# zero_mode=False: pymodbus maps protocol address 0 to index 1 of the block.
block = ModbusSequentialDataBlock(0, [0] + registers)
context = ModbusServerContext(
    slaves=ModbusSlaveContext(hr=block, ir=block, zero_mode=False), single=True
)
asyncio.run(StartAsyncTcpServer(context=context, address=("127.0.0.1", port)))
