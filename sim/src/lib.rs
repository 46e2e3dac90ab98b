//! # sim: a software ConnectX
//!
//! A hardware model of the parts of a ConnectX NIC that packet steering touches, behind
//! exactly the device seam the driver uses on a real card (see `ARCHITECTURE.md`, "The
//! one seam"):
//!
//! - [`profile`]: device capabilities per generation (ConnectX-5, 6 Dx, 7).
//! - [`cmd`]: the PRM command interface (mailbox bytes in and out), over the firmware
//!   objects of [`fw`].
//! - [`endpoint`]: where packets leave software steering (firmware-owned addresses).
//! - [`icm`]: SW-ICM, the device memory that holds STEs and action data.
//! - [`host_mem`] and [`queue`]: host memory registered for DMA, and the steering send /
//!   completion queue that executes RDMA WRITE and READ WQEs against ICM.
//! - [`packet`] and [`pipeline`]: packets, and the walk of STE chains with actions.
//! - [`device`]: all of it as one [`Device`], the type a driver (or test) talks to.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cmd;
pub mod device;
pub mod endpoint;
pub mod fw;
pub mod host_mem;
pub mod icm;
pub mod packet;
pub mod pipeline;
pub mod profile;
pub mod queue;

pub use device::{Delivery, Device, DeviceError, Entry, Fate, Stage};
