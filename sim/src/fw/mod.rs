//! Firmware objects: flow tables (firmware- and SW-owned), flow groups, flow entries, counters and endpoints.
