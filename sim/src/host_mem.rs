//! Host memory the driver shares with the device: queue rings and staging buffers, registered for DMA under an lkey.
