"""Simulated Huawei SUN2000 + LUNA2000 + meter served over Modbus TCP from the register profiles."""
