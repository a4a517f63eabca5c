//! The device-mapper ioctls dmheal issues itself, all through one `issue` (one `unsafe`).
//!
//! Everything else goes through the devicemapper crate. These do not, for two reasons:
//! * DM_LIST_DEVICES with DM_UUID_FLAG: the crate's list drops the uuids (see `list.rs`);
//! * DM_DEV_RENAME (stamping a uuid), DM_DEV_REMOVE and DM_DEV_SUSPEND (resume): whenever
//!   /run/udev/control exists, the crate attaches a udev cookie to these and then waits on its
//!   SysV semaphore with no deadline. A udev that never completes the cookie would hang a VM
//!   start (the SM hook) forever, holding SM's lock, with the mapping removed and the outcome
//!   never journalled. Issued here without a cookie, the kernel still sends its uevent and
//!   udev still processes it as any other; nothing waits for it (see `KernelDm::remove_by_uuid`
//!   for the /dev/mapper node).
//!
//! Layout (linux/dm-ioctl.h): `struct dm_ioctl` is 312 bytes: version[3] u32, data_size u32,
//! data_start u32, target_count u32, open_count i32, flags u32, event_nr u32, padding u32,
//! dev u64, name[128], uuid[129], data[7]. Input data (a new name or uuid) follows at
//! data_start.

use std::fs::File;
use std::os::fd::AsRawFd;

use nix::errno::Errno;

/// sizeof(struct dm_ioctl).
pub const HEADER: usize = 312;
/// Offsets in struct dm_ioctl.
pub const VERSION: usize = 0;
pub const DATA_SIZE: usize = 12;
pub const DATA_START: usize = 16;
pub const FLAGS: usize = 28;
const NAME: usize = 48;
const NAME_LEN: usize = 128;
const UUID: usize = 176;
const UUID_LEN: usize = 129;

/// DM_UUID_FLAG: list uuids (DM_LIST_DEVICES); the new value is a uuid (DM_DEV_RENAME).
pub const UUID_FLAG: u32 = 1 << 14;

/// The dm ioctl commands issued here (DM_*_CMD).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmd {
    ListDevices = 2,
    DevRemove = 4,
    DevRename = 5,
    /// Suspend, or (without DM_SUSPEND_FLAG) resume.
    DevSuspend = 6,
}

/// A request buffer: the header, then room for input data and the kernel's reply.
pub struct Request {
    pub buf: Vec<u8>,
}

impl Request {
    /// A zeroed header for dm ioctl interface 4 with `size` bytes in all (at least the header).
    pub fn new(size: usize) -> Self {
        let size = size.max(HEADER);
        let mut r = Request {
            buf: vec![0u8; size],
        };
        r.put_u32(VERSION, 4);
        r.put_u32(DATA_SIZE, size as u32);
        r.put_u32(DATA_START, HEADER as u32);
        r
    }

    fn put_u32(&mut self, at: usize, v: u32) {
        self.buf[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    }

    pub fn flags(mut self, flags: u32) -> Self {
        self.put_u32(FLAGS, flags);
        self
    }

    /// Names the device by name. Fails (EINVAL) for a name that does not fit with its NUL.
    pub fn name(mut self, name: &str) -> Result<Self, Errno> {
        put_cstr(&mut self.buf[NAME..NAME + NAME_LEN], name)?;
        Ok(self)
    }

    /// Names the device by uuid (with an empty name, the kernel looks it up by uuid only).
    pub fn uuid(mut self, uuid: &str) -> Result<Self, Errno> {
        put_cstr(&mut self.buf[UUID..UUID + UUID_LEN], uuid)?;
        Ok(self)
    }

    /// A NUL-terminated string as input data, after the header.
    pub fn data_cstr(mut self, s: &str) -> Result<Self, Errno> {
        if s.as_bytes().contains(&0) {
            return Err(Errno::EINVAL);
        }
        let need = (HEADER + s.len() + 1).next_multiple_of(8);
        if self.buf.len() < need {
            self.buf.resize(need, 0);
            self.put_u32(DATA_SIZE, need as u32);
        }
        self.buf[HEADER..HEADER + s.len()].copy_from_slice(s.as_bytes());
        self.buf[HEADER + s.len()] = 0;
        Ok(self)
    }

    pub fn reply_u32(&self, at: usize) -> u32 {
        u32::from_ne_bytes(self.buf[at..at + 4].try_into().expect("4 bytes"))
    }
}

fn put_cstr(field: &mut [u8], s: &str) -> Result<(), Errno> {
    if s.len() >= field.len() || s.as_bytes().contains(&0) {
        return Err(Errno::EINVAL);
    }
    field.fill(0);
    field[..s.len()].copy_from_slice(s.as_bytes());
    Ok(())
}

/// Issue `cmd` with `req` on the control device; the reply overwrites `req`.
pub fn issue(control: &File, cmd: Cmd, req: &mut Request) -> Result<(), Errno> {
    // _IOWR(0xfd, cmd, struct dm_ioctl): the size field is the header's, whatever the buffer.
    let request = nix::request_code_readwrite!(0xfd, cmd as u8, HEADER);
    debug_assert_eq!(req.reply_u32(DATA_SIZE) as usize, req.buf.len());
    // SAFETY: `req.buf` is `data_size` bytes long and starts with a struct dm_ioctl whose
    // data_size field says so (Request keeps the two equal): the kernel reads and writes no
    // byte outside it. The kernel copies the header with copy_from_user, so the Vec's byte
    // alignment is enough.
    let rc = unsafe { libc::ioctl(control.as_raw_fd(), request as _, req.buf.as_mut_ptr()) };
    Errno::result(rc).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_laid_out_as_the_kernel_reads_them() {
        let r = Request::new(0)
            .name("vg-lv")
            .unwrap()
            .flags(UUID_FLAG)
            .data_cstr("DMHEAL-1")
            .unwrap();
        assert_eq!(r.reply_u32(VERSION), 4);
        assert_eq!(r.reply_u32(DATA_START) as usize, HEADER);
        assert_eq!(r.reply_u32(DATA_SIZE) as usize, r.buf.len());
        assert_eq!(r.buf.len() % 8, 0);
        assert_eq!(&r.buf[NAME..NAME + 6], b"vg-lv\0");
        assert_eq!(&r.buf[HEADER..HEADER + 9], b"DMHEAL-1\0");
        assert_eq!(r.reply_u32(FLAGS), UUID_FLAG);
        let u = Request::new(0).uuid("LVM-x").unwrap();
        assert_eq!(&u.buf[UUID..UUID + 6], b"LVM-x\0");
        assert_eq!(u.buf[NAME], 0);
    }

    #[test]
    fn values_that_do_not_fit_are_refused() {
        assert_eq!(
            Request::new(0).name(&"a".repeat(128)).err(),
            Some(Errno::EINVAL)
        );
        assert!(Request::new(0).name(&"a".repeat(127)).is_ok());
        assert_eq!(
            Request::new(0).uuid(&"u".repeat(129)).err(),
            Some(Errno::EINVAL)
        );
        assert_eq!(Request::new(0).name("a\0b").err(), Some(Errno::EINVAL));
    }
}
