//! The simulator backend: the device seam over a [`sim::Device`], the default backend.
//!
//! Every seam call maps onto the simulated device's own interface: commands go to its
//! PRM command interface as the same mailbox bytes, SW-ICM to its ICM ranges, host
//! buffers are [`HostMemory`] registered in its memory registry, and steering queues
//! are its queues, executed on the doorbell. Tests reach the simulated device (ICM
//! contents, queue faults, command faults) through [`SimBackend::sim`].

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ::sim::device::QueueHandle;
use ::sim::host_mem::{HostMemError, HostMemory, Mr};
use ::sim::icm::{IcmError, IcmKind as SimIcmKind};
use ::sim::profile::{DeviceModel, Profile};
use ::sim::queue::{DbRecord, QueueError, RingConfig};
use ste_builder::bits;
use ste_builder::prm::mbox_out;
use ste_builder::wqe::BB_SIZE;

use super::{
    Device, DeviceError, DmaBuffer, DmaMemory, IcmKind, IcmRegion, ObjectId, QueueSpec,
    SteeringQueue,
};

/// A [`Device`] backed by a simulated ConnectX.
#[derive(Debug)]
pub struct SimBackend {
    dev: Arc<::sim::Device>,
    /// Live objects made by `create_object`.
    objects: Mutex<HashSet<u64>>,
    next_object: AtomicU64,
}

impl SimBackend {
    /// The seam over `dev` (which tests may keep a handle to).
    pub fn new(dev: Arc<::sim::Device>) -> SimBackend {
        SimBackend {
            dev,
            objects: Mutex::new(HashSet::new()),
            next_object: AtomicU64::new(1),
        }
    }

    /// A fresh simulated device of `model`'s default profile.
    pub fn of_model(model: DeviceModel) -> SimBackend {
        SimBackend::new(Arc::new(::sim::Device::of_model(model)))
    }

    /// A fresh simulated device with `profile` (which must be valid).
    pub fn with_profile(profile: Profile) -> Result<SimBackend, ::sim::DeviceError> {
        Ok(SimBackend::new(Arc::new(::sim::Device::new(profile)?)))
    }

    /// The simulated device, for observation and fault injection.
    pub fn sim(&self) -> &Arc<::sim::Device> {
        &self.dev
    }

    /// Live objects created through the seam and not yet destroyed.
    pub fn live_objects(&self) -> usize {
        self.objects.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

fn sim_kind(kind: IcmKind) -> SimIcmKind {
    match kind {
        IcmKind::Steering => SimIcmKind::Steering,
        IcmKind::ModifyAction => SimIcmKind::ModifyAction,
        IcmKind::ModifyPattern => SimIcmKind::ModifyPattern,
        IcmKind::Encap => SimIcmKind::Encap,
    }
}

fn icm_error(kind: IcmKind, e: IcmError) -> DeviceError {
    match e {
        IcmError::Exhausted {
            size, log_align, ..
        } => DeviceError::IcmExhausted {
            kind,
            size,
            log_align,
        },
        IcmError::NoSuchKind(_) => DeviceError::NoIcmKind(kind),
        // An injected fault stands for a device out of ICM.
        IcmError::Injected { size, .. } => DeviceError::IcmExhausted {
            kind,
            size,
            log_align: 0,
        },
        other => DeviceError::Icm(other.to_string()),
    }
}

fn mem_error(e: HostMemError) -> DeviceError {
    match e {
        HostMemError::OutOfRange { offset, len, size } => {
            DeviceError::DmaOutOfRange { offset, len, size }
        }
    }
}

impl SimBackend {
    /// Runs one command and reads its status from the output mailbox, as a driver over
    /// DEVX does.
    fn exec(&self, input: &[u8], output: &mut [u8]) -> Result<(), DeviceError> {
        self.dev
            .cmd(input, output)
            .map_err(|e| DeviceError::Mailbox(e.to_string()))?;
        // `cmd` succeeded, so the output holds at least the status header.
        let status = bits::get(output, mbox_out::STATUS) as u8;
        let syndrome = bits::get(output, mbox_out::SYNDROME) as u32;
        if status != 0 {
            return Err(DeviceError::CommandStatus { status, syndrome });
        }
        Ok(())
    }
}

impl Device for SimBackend {
    fn command(&self, input: &[u8], output: &mut [u8]) -> Result<(), DeviceError> {
        self.exec(input, output)
    }

    fn create_object(&self, input: &[u8], output: &mut [u8]) -> Result<ObjectId, DeviceError> {
        self.exec(input, output)?;
        let id = self.next_object.fetch_add(1, Ordering::Relaxed);
        self.objects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id);
        Ok(ObjectId(id))
    }

    fn destroy_object(&self, obj: ObjectId, input: &[u8]) -> Result<(), DeviceError> {
        let live = self
            .objects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&obj.0);
        if !live {
            return Err(DeviceError::NoSuchObject(obj));
        }
        // Destroy commands answer with the status header only.
        let mut out = [0u8; mbox_out::SIZE_BITS / 8];
        self.exec(input, &mut out)
    }

    fn alloc_icm(&self, kind: IcmKind, size: u64, log_align: u8) -> Result<IcmRegion, DeviceError> {
        let a = self
            .dev
            .alloc_icm(sim_kind(kind), size, log_align)
            .map_err(|e| icm_error(kind, e))?;
        Ok(IcmRegion {
            kind,
            addr: a.addr,
            size: a.size,
            rkey: a.rkey,
        })
    }

    fn free_icm(&self, region: &IcmRegion) -> Result<(), DeviceError> {
        self.dev
            .free_icm(region.addr)
            .map(|_| ())
            .map_err(|e| icm_error(region.kind, e))
    }

    fn alloc_dma(&self, len: usize) -> Result<Box<dyn DmaBuffer>, DeviceError> {
        let mem = HostMemory::new(len);
        let mr = self
            .dev
            .register_memory(&mem)
            .map_err(|e| DeviceError::Dma {
                len,
                reason: e.to_string(),
            })?;
        Ok(Box::new(SimDmaBuffer {
            mem: SimMem(mem),
            mr,
            dev: Arc::clone(&self.dev),
        }))
    }

    fn create_queue(&self, spec: QueueSpec) -> Result<Box<dyn SteeringQueue>, DeviceError> {
        let ring = |log: u8| -> Result<HostMemory, DeviceError> {
            let len = BB_SIZE
                .checked_shl(u32::from(log))
                .filter(|&l| l >> log == BB_SIZE)
                .ok_or_else(|| DeviceError::Queue(format!("a ring of 2^{log} entries")))?;
            Ok(HostMemory::new(len))
        };
        let sq = ring(spec.log_sq_bbs)?;
        let cq = ring(spec.log_cq_entries)?;
        let dbrec = HostMemory::new(4);
        let qpn = self
            .dev
            .create_queue(
                RingConfig {
                    mem: sq.clone(),
                    offset: 0,
                    log_entries: spec.log_sq_bbs,
                },
                RingConfig {
                    mem: cq.clone(),
                    offset: 0,
                    log_entries: spec.log_cq_entries,
                },
                DbRecord {
                    mem: dbrec.clone(),
                    offset: 0,
                },
            )
            .map_err(|e| DeviceError::Queue(e.to_string()))?;
        let handle = match self.dev.queue_handle(qpn) {
            Ok(handle) => handle,
            Err(e) => {
                let _ = self.dev.destroy_queue(qpn);
                return Err(DeviceError::Queue(e.to_string()));
            }
        };
        Ok(Box::new(SimQueue {
            handle,
            spec,
            sq: SimMem(sq),
            cq: SimMem(cq),
            dbrec: SimMem(dbrec),
        }))
    }
}

/// A host buffer of the simulator seen as [`DmaMemory`].
#[derive(Debug)]
struct SimMem(HostMemory);

impl DmaMemory for SimMem {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), DeviceError> {
        self.0.read(offset, out).map_err(mem_error)
    }

    fn write(&self, offset: usize, data: &[u8]) -> Result<(), DeviceError> {
        self.0.write(offset, data).map_err(mem_error)
    }

    /// One look under the read lock: the simulator writes each CQE whole under the
    /// buffer's write lock (`sim::queue`'s completion ring), so while the read lock is
    /// held the record is either all of a CQE or none of it, and a new owner byte means
    /// the rest is that CQE. The record is copied only when it is new.
    fn read_flagged(
        &self,
        offset: usize,
        out: &mut [u8],
        flag: usize,
        fresh: &dyn Fn(u8) -> bool,
    ) -> Result<bool, DeviceError> {
        if flag >= out.len() {
            return super::read_flag_first(self, offset, out, flag, fresh);
        }
        self.0.check(offset, out.len()).map_err(mem_error)?;
        let mem = self.0.lock_read();
        let record = &mem[offset..offset + out.len()];
        if !fresh(record[flag]) {
            out[flag] = record[flag];
            return Ok(false);
        }
        out.copy_from_slice(record);
        Ok(true)
    }
}

/// A registered host buffer; dropping it deregisters it.
#[derive(Debug)]
struct SimDmaBuffer {
    mem: SimMem,
    mr: Mr,
    dev: Arc<::sim::Device>,
}

impl DmaMemory for SimDmaBuffer {
    fn len(&self) -> usize {
        self.mem.len()
    }

    fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), DeviceError> {
        self.mem.read(offset, out)
    }

    fn write(&self, offset: usize, data: &[u8]) -> Result<(), DeviceError> {
        self.mem.write(offset, data)
    }
}

impl DmaBuffer for SimDmaBuffer {
    fn lkey(&self) -> u32 {
        self.mr.lkey
    }

    fn iova(&self) -> u64 {
        self.mr.iova
    }
}

impl Drop for SimDmaBuffer {
    fn drop(&mut self) {
        // The registration exists until here; nothing else removes it.
        let _ = self.dev.deregister_memory(self.mr.lkey);
    }
}

/// A simulated steering queue; dropping it destroys it.
#[derive(Debug)]
struct SimQueue {
    /// Rings the doorbell without a lookup by QP number.
    handle: QueueHandle,
    spec: QueueSpec,
    sq: SimMem,
    cq: SimMem,
    dbrec: SimMem,
}

impl SteeringQueue for SimQueue {
    fn qpn(&self) -> u32 {
        self.handle.qpn()
    }

    fn spec(&self) -> QueueSpec {
        self.spec
    }

    fn sq(&self) -> &dyn DmaMemory {
        &self.sq
    }

    fn cq(&self) -> &dyn DmaMemory {
        &self.cq
    }

    fn cq_dbrec(&self) -> &dyn DmaMemory {
        &self.dbrec
    }

    fn ring_doorbell(&mut self, producer: u16, _last_wqe: u16) -> Result<(), DeviceError> {
        match self.handle.doorbell(producer) {
            Ok(_) => Ok(()),
            Err(::sim::DeviceError::Queue(QueueError::CqOverrun)) => Err(DeviceError::CqOverrun {
                qpn: self.handle.qpn(),
            }),
            Err(e) => Err(DeviceError::Queue(e.to_string())),
        }
    }
}

impl Drop for SimQueue {
    fn drop(&mut self) {
        // Only this handle destroys the queue.
        let _ = self.handle.device().destroy_queue(self.handle.qpn());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ste_builder::prm::{
        alloc_flow_counter_in, alloc_flow_counter_out, dealloc_flow_counter_in, mbox_in,
    };

    fn be() -> SimBackend {
        SimBackend::of_model(DeviceModel::ConnectX6Dx)
    }

    #[test]
    fn handles_are_send_and_sync() {
        fn send_sync<T: Send + Sync + ?Sized>() {}
        fn send<T: Send + ?Sized>() {}
        send_sync::<SimBackend>();
        send_sync::<dyn Device>();
        send_sync::<dyn DmaBuffer>();
        send::<dyn SteeringQueue>();
    }

    #[test]
    fn icm_regions_round_trip_and_errors_are_typed() {
        let be = be();
        let r = be.alloc_icm(IcmKind::Steering, 4096, 12).unwrap();
        assert_eq!(r.kind, IcmKind::Steering);
        assert_eq!(r.addr % 4096, 0);
        assert!(r.size >= 4096);
        assert_eq!(
            be.sim().icm().check_rkey(r.rkey, r.addr, 64).unwrap().addr,
            r.addr
        );
        be.free_icm(&r).unwrap();
        assert!(matches!(be.free_icm(&r), Err(DeviceError::Icm(_))));
        assert!(matches!(
            be.alloc_icm(IcmKind::Steering, 1 << 40, 0),
            Err(DeviceError::Icm(_))
        ));
        let _all = be.alloc_icm(IcmKind::ModifyAction, 1 << 26, 0).unwrap();
        assert_eq!(
            be.alloc_icm(IcmKind::ModifyAction, 64, 0),
            Err(DeviceError::IcmExhausted {
                kind: IcmKind::ModifyAction,
                size: 4096,
                log_align: 0
            })
        );
        // The default ConnectX-6 Dx profile has no encap ICM.
        assert_eq!(
            be.alloc_icm(IcmKind::Encap, 64, 0),
            Err(DeviceError::NoIcmKind(IcmKind::Encap))
        );
    }

    #[test]
    fn dma_buffers_are_registered_until_dropped() {
        let be = be();
        let buf = be.alloc_dma(256).unwrap();
        assert_eq!(buf.len(), 256);
        buf.write(250, &[1, 2, 3, 4, 5, 6]).unwrap();
        let mut back = [0u8; 6];
        buf.read(250, &mut back).unwrap();
        assert_eq!(back, [1, 2, 3, 4, 5, 6]);
        assert_eq!(
            buf.write(251, &[0; 6]),
            Err(DeviceError::DmaOutOfRange {
                offset: 251,
                len: 6,
                size: 256
            })
        );
        let lkey = buf.lkey();
        assert!(be.sim().deregister_memory(lkey).is_ok());
        // Re-register to observe that dropping removes exactly its own registration.
        let buf2 = be.alloc_dma(64).unwrap();
        let lkey2 = buf2.lkey();
        drop(buf2);
        assert!(be.sim().deregister_memory(lkey2).is_err());
        assert!(matches!(
            be.alloc_dma(0),
            Err(DeviceError::Dma { len: 0, .. })
        ));
    }

    #[test]
    fn queues_are_destroyed_on_drop() {
        let be = be();
        let q = be
            .create_queue(QueueSpec {
                log_sq_bbs: 4,
                log_cq_entries: 4,
            })
            .unwrap();
        assert_eq!(q.sq().len(), 16 * 64);
        assert_eq!(q.cq().len(), 16 * 64);
        assert_eq!(q.cq_dbrec().len(), 4);
        let qpn = q.qpn();
        assert!(be.sim().with_queue(qpn, |_| ()).is_ok());
        drop(q);
        assert!(be.sim().with_queue(qpn, |_| ()).is_err());
        assert!(matches!(
            be.create_queue(QueueSpec {
                log_sq_bbs: 16,
                log_cq_entries: 4
            }),
            Err(DeviceError::Queue(_))
        ));
    }

    #[test]
    fn objects_are_created_and_destroyed_once() {
        let be = be();
        let mut inp = vec![0u8; alloc_flow_counter_in::SIZE_BITS / 8];
        bits::set(&mut inp, mbox_in::OPCODE, 0x939);
        let mut out = vec![0u8; alloc_flow_counter_out::SIZE_BITS / 8];
        let obj = be.create_object(&inp, &mut out).unwrap();
        let id = bits::get(&out, alloc_flow_counter_out::FLOW_COUNTER_ID);
        assert!(be.sim().with_firmware(|fw| fw.counter(id as u32)).is_some());
        assert_eq!(be.live_objects(), 1);

        let mut del = vec![0u8; dealloc_flow_counter_in::SIZE_BITS / 8];
        bits::set(&mut del, mbox_in::OPCODE, 0x93a);
        bits::set(&mut del, dealloc_flow_counter_in::FLOW_COUNTER_ID, id);
        be.destroy_object(obj, &del).unwrap();
        assert!(be.sim().with_firmware(|fw| fw.counter(id as u32)).is_none());
        assert_eq!(
            be.destroy_object(obj, &del),
            Err(DeviceError::NoSuchObject(obj))
        );
        assert_eq!(be.live_objects(), 0);

        // A failed creation hands out no handle and reports the mailbox status.
        let mut bad = inp.clone();
        bits::set(&mut bad, mbox_in::OP_MOD, 1);
        match be.create_object(&bad, &mut out) {
            Err(DeviceError::CommandStatus { status, .. }) => assert_eq!(status, 0x3),
            other => panic!("{other:?}"),
        }
        assert_eq!(be.live_objects(), 0);
        assert!(matches!(
            be.command(&inp, &mut [0u8; 4]),
            Err(DeviceError::Mailbox(_))
        ));
    }
}
