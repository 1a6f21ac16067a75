"""Real devices behind the HAL: one device contract, a codec per wire protocol, a transport under it.

The split follows NOS3, COSMOS and F Prime: `description` says what a device kind reads and accepts
(protocol-neutral); `emulated` runs a simulated model behind that contract on the device's side of a wire;
`host` is the HAL device a service holds, talking through a `DeviceLink` to the far end; `modbus` and
`serial_line` are the two wire protocols, each with its client link and its emulator server.
"""
