//! The WQE and CQE layouts of an mlx5 send queue and completion queue, as steering uses them.
