"""PDU and power-meter sources: SNMP with vendor profiles as data files, Modbus register maps."""
