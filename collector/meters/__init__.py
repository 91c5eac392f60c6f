"""Modbus TCP power meters (switchboard meters), with register maps as data files."""
