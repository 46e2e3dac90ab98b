//! The steering queue: an mlx5 send queue and completion queue in host memory, executed on the doorbell.
