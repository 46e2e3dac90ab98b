//! Packets: parsing wire bytes into the fields steering matches on, and building packets from a match value.
