//! The packet pipeline: walks STE chains in ICM as the NIC does, executes actions, and returns a verdict and trace.
