//! LVM2's on-disk layout: the PV label in one of the first four sectors, the metadata area
//! header it points to, and the committed metadata text in that area's circular buffer.
//!
//! Why read it ourselves: `lvs` on a VG of thousands of LVs spends seconds parsing the same
//! text (issue 7); dmheal needs a handful of fields from it. Every structure is checked the way
//! LVM checks it (magic, version, bounds, CRC of the header and of the text), and anything that
//! does not check out is an error the caller answers by asking `lvs` instead.
//!
//! Layout (lib/label/label.h, lib/format_text/layout.h in lvm2), all little-endian:
//! - label_header (sector 0–3): id "LABELONE", sector_xl u64, crc_xl u32 (CRC of bytes 20..512),
//!   offset_xl u32 (where the pv_header starts), type "LVM2 001".
//! - pv_header: pv uuid (32 chars), device size u64, then two zero-terminated lists of
//!   {offset u64, size u64}: data areas, then metadata areas.
//! - mda_header (512 bytes at the metadata area's start): checksum u32 (CRC of bytes 4..512),
//!   magic (16 bytes), version u32 = 1, start u64, size u64, then raw_locns {offset u64,
//!   size u64, checksum u32, flags u32}; the first is the committed metadata.
//! - The text lives at start + offset; when it runs past the area's end it continues at
//!   start + 512. Its checksum is the CRC of the whole text.

use std::io;

const SECTOR: usize = 512;
const LABEL_SCAN_SECTORS: usize = 4;
const LABEL_ID: &[u8; 8] = b"LABELONE";
const LABEL_TYPE: &[u8; 8] = b"LVM2 001";
const MDA_HEADER_SIZE: u64 = 512;
const FMTT_MAGIC: &[u8; 16] = b" LVM2 x[5A%r0N*>";
const FMTT_VERSION: u32 = 1;
const INITIAL_CRC: u32 = 0xf597_a6cf;
const RAW_LOCN_IGNORED: u32 = 1;
/// LVM refuses metadata text larger than this too (it must fit half of any sane area).
const MAX_TEXT: u64 = 128 << 20;

/// Reads bytes at absolute offsets of one device (an in-memory image in tests).
pub trait ReadAt {
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>>;

    /// The same bytes as `read_at`, handed to `each` piece by piece in order, so that a
    /// caller who keeps little of megabytes never holds them all (the device reader streams
    /// them through one small buffer).
    fn read_each(&self, offset: u64, len: usize, each: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        each(&self.read_at(offset, len)?);
        Ok(())
    }
}

/// LVM's CRC: the reflected CRC-32 polynomial (0xedb88320) seeded with `initial`, with no
/// final inversion. crc32fast computes the same polynomial with inversion on entry and exit,
/// so inverting around it gives LVM's value.
pub fn lvm_crc(initial: u32, data: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(!initial);
    h.update(data);
    !h.finalize()
}

/// What a PV label says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PvLabel {
    /// The PV uuid as stored: 32 characters, no dashes.
    pub pv_uuid: String,
    /// Metadata areas: (absolute offset, size) in bytes.
    pub metadata_areas: Vec<(u64, u64)>,
}

/// Why a device's metadata could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OnDiskError {
    #[error("reading the device: {0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Corrupt(String),
}

fn corrupt<T>(what: impl Into<String>) -> Result<T, OnDiskError> {
    Err(OnDiskError::Corrupt(what.into()))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The LVM2 label, if the device carries one.
pub fn read_label(dev: &dyn ReadAt) -> Result<Option<PvLabel>, OnDiskError> {
    let head = dev.read_at(0, SECTOR * LABEL_SCAN_SECTORS)?;
    for n in 0..LABEL_SCAN_SECTORS {
        let s = &head[n * SECTOR..(n + 1) * SECTOR];
        if &s[..8] != LABEL_ID {
            continue;
        }
        if u64_at(s, 8) != n as u64 {
            return corrupt(format!("label in sector {n} claims another sector"));
        }
        if lvm_crc(INITIAL_CRC, &s[20..]) != u32_at(s, 16) {
            return corrupt(format!("label checksum mismatch in sector {n}"));
        }
        if &s[24..32] != LABEL_TYPE {
            return corrupt("label is not of type LVM2 001");
        }
        return parse_pv_header(s, u32_at(s, 20) as usize).map(Some);
    }
    Ok(None)
}

fn parse_pv_header(sector: &[u8], at: usize) -> Result<PvLabel, OnDiskError> {
    // uuid (32) + device size (8), then {offset, size} pairs.
    if at < 32 || at + 40 > sector.len() {
        return corrupt("PV header offset out of the label sector");
    }
    let pv_uuid = String::from_utf8_lossy(&sector[at..at + 32]).into_owned();
    let mut pos = at + 40;
    let mut lists: [Vec<(u64, u64)>; 2] = [Vec::new(), Vec::new()];
    for list in lists.iter_mut() {
        loop {
            if pos + 16 > sector.len() {
                return corrupt("PV header area list runs past the label sector");
            }
            let (offset, size) = (u64_at(sector, pos), u64_at(sector, pos + 8));
            pos += 16;
            if offset == 0 {
                break;
            }
            list.push((offset, size));
        }
    }
    let [_, metadata_areas] = lists;
    Ok(PvLabel {
        pv_uuid,
        metadata_areas,
    })
}

/// Where the committed metadata text of an area is, as its header says: enough to know the
/// text has not changed (LVM writes new metadata elsewhere and switches the header, and the
/// checksum covers the text).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Committed {
    pub start: u64,
    pub size: u64,
    pub offset: u64,
    pub len: u64,
    pub checksum: u32,
}

/// The committed metadata text in the metadata area at `start` (absolute byte offset), or
/// `None` when the area holds none (a fresh PV) or is marked ignored.
#[cfg(test)]
pub fn read_metadata_text(dev: &dyn ReadAt, start: u64) -> Result<Option<String>, OnDiskError> {
    match read_committed(dev, start)? {
        None => Ok(None),
        Some(c) => read_text(dev, &c).map(Some),
    }
}

/// The header of the metadata area at `start`: where its committed text is, or `None` when
/// the area holds none (a fresh PV) or is marked ignored.
pub fn read_committed(dev: &dyn ReadAt, start: u64) -> Result<Option<Committed>, OnDiskError> {
    let h = dev.read_at(start, MDA_HEADER_SIZE as usize)?;
    if lvm_crc(INITIAL_CRC, &h[4..]) != u32_at(&h, 0) {
        return corrupt(format!("metadata area header checksum mismatch at {start}"));
    }
    if &h[4..20] != FMTT_MAGIC {
        return corrupt(format!("no metadata area magic at {start}"));
    }
    if u32_at(&h, 20) != FMTT_VERSION {
        return corrupt(format!(
            "metadata area version {} at {start}",
            u32_at(&h, 20)
        ));
    }
    if u64_at(&h, 24) != start {
        return corrupt(format!(
            "metadata area header at {start} names another start"
        ));
    }
    let size = u64_at(&h, 32);
    if size < MDA_HEADER_SIZE {
        return corrupt(format!("metadata area at {start} is too small"));
    }
    // raw_locns[0]: the committed metadata.
    let (offset, len, checksum, flags) = (
        u64_at(&h, 40),
        u64_at(&h, 48),
        u32_at(&h, 56),
        u32_at(&h, 60),
    );
    if offset == 0 || flags & RAW_LOCN_IGNORED != 0 {
        return Ok(None);
    }
    if offset >= size || len > size - MDA_HEADER_SIZE || len > MAX_TEXT {
        return corrupt(format!(
            "metadata location out of bounds (offset {offset} size {len} area {size})"
        ));
    }
    Ok(Some(Committed {
        start,
        size,
        offset,
        len,
        checksum,
    }))
}

/// The committed text `c` locates, its checksum verified.
#[cfg(test)]
pub fn read_text(dev: &dyn ReadAt, c: &Committed) -> Result<String, OnDiskError> {
    let mut text = Vec::new();
    stream_text(dev, c, &mut |piece| text.extend_from_slice(piece))?;
    String::from_utf8(text).or_else(|_| corrupt("metadata text is not UTF-8"))
}

/// The committed text `c` locates, up to its terminating NUL, handed to `each` piece by
/// piece; Ok once the checksum over all of it (NUL and what follows included, as LVM
/// computes it) matched. On an error the pieces already handed over must be thrown away.
pub fn stream_text(
    dev: &dyn ReadAt,
    c: &Committed,
    each: &mut dyn FnMut(&[u8]),
) -> Result<(), OnDiskError> {
    let Committed {
        start,
        size,
        offset,
        len,
        checksum,
    } = *c;
    let wrap = (offset + len).saturating_sub(size);
    let mut crc = crc32fast::Hasher::new_with_initial(!INITIAL_CRC);
    let mut ended = false;
    let mut take = |piece: &[u8]| {
        crc.update(piece);
        if !ended {
            let end = piece.iter().position(|b| *b == 0);
            each(&piece[..end.unwrap_or(piece.len())]);
            ended = end.is_some();
        }
    };
    dev.read_each(start + offset, (len - wrap) as usize, &mut take)?;
    if wrap > 0 {
        dev.read_each(start + MDA_HEADER_SIZE, wrap as usize, &mut take)?;
    }
    if !crc.finalize() != checksum {
        return corrupt("metadata text checksum mismatch (changed while read?)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// LVM's table-driven CRC from lib/misc/crc.c, bit by bit: the reference lvm_crc must match.
    fn reference_crc(initial: u32, data: &[u8]) -> u32 {
        let mut crc = initial;
        for b in data {
            crc ^= *b as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        crc
    }

    #[test]
    fn crc_is_lvms() {
        for data in [&b""[..], b"a", b"LVM2 metadata text\n", &[0u8; 512][..]] {
            assert_eq!(lvm_crc(INITIAL_CRC, data), reference_crc(INITIAL_CRC, data));
        }
    }

    /// A PV image built to LVM's layout: label in `label_sector`, one metadata area at 4096 of
    /// `area` bytes, `text` (NUL-terminated, as LVM stores it) at `text_offset` in the area.
    fn pv_image(label_sector: usize, area: u64, text_offset: u64, text: &str) -> Vec<u8> {
        let start = 4096u64;
        let mut img = vec![0u8; (start + area) as usize + 4096];
        // Label + pv_header.
        let l = label_sector * SECTOR;
        img[l..l + 8].copy_from_slice(LABEL_ID);
        img[l + 8..l + 16].copy_from_slice(&(label_sector as u64).to_le_bytes());
        img[l + 20..l + 24].copy_from_slice(&32u32.to_le_bytes());
        img[l + 24..l + 32].copy_from_slice(LABEL_TYPE);
        let p = l + 32;
        img[p..p + 32].copy_from_slice(b"abcdefghijklmnopqrstuvwxyz012345");
        img[p + 32..p + 40].copy_from_slice(&(1u64 << 30).to_le_bytes());
        // data area {1 MiB, 0}, terminator, metadata area {start, area}, terminator.
        img[p + 40..p + 48].copy_from_slice(&(1u64 << 20).to_le_bytes());
        img[p + 72..p + 80].copy_from_slice(&start.to_le_bytes());
        img[p + 80..p + 88].copy_from_slice(&area.to_le_bytes());
        let crc = lvm_crc(INITIAL_CRC, &img[l + 20..l + SECTOR]);
        img[l + 16..l + 20].copy_from_slice(&crc.to_le_bytes());
        // Text, wrapping past the area's end back to start + 512.
        let mut bytes = text.as_bytes().to_vec();
        bytes.push(0);
        for (i, b) in bytes.iter().enumerate() {
            let mut at = text_offset + i as u64;
            if at >= area {
                at = at - area + MDA_HEADER_SIZE;
            }
            img[(start + at) as usize] = *b;
        }
        // mda_header.
        let h = start as usize;
        img[h + 4..h + 20].copy_from_slice(FMTT_MAGIC);
        img[h + 20..h + 24].copy_from_slice(&FMTT_VERSION.to_le_bytes());
        img[h + 24..h + 32].copy_from_slice(&start.to_le_bytes());
        img[h + 32..h + 40].copy_from_slice(&area.to_le_bytes());
        img[h + 40..h + 48].copy_from_slice(&text_offset.to_le_bytes());
        img[h + 48..h + 56].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
        img[h + 56..h + 60].copy_from_slice(&lvm_crc(INITIAL_CRC, &bytes).to_le_bytes());
        let crc = lvm_crc(INITIAL_CRC, &img[h + 4..h + 512]);
        img[h..h + 4].copy_from_slice(&crc.to_le_bytes());
        img
    }

    struct Mem(Vec<u8>);
    impl ReadAt for Mem {
        fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
            let o = offset as usize;
            self.0
                .get(o..o + len)
                .map(|s| s.to_vec())
                .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))
        }
    }

    #[test]
    fn reads_label_and_committed_text() {
        let img = Mem(pv_image(1, 8192, 512, "vg { seqno = 3 }"));
        let label = read_label(&img).unwrap().unwrap();
        assert_eq!(label.pv_uuid, "abcdefghijklmnopqrstuvwxyz012345");
        assert_eq!(label.metadata_areas, vec![(4096, 8192)]);
        let text = read_metadata_text(&img, 4096).unwrap().unwrap();
        assert_eq!(text, "vg { seqno = 3 }");
    }

    #[test]
    fn text_wrapping_round_the_area_is_joined() {
        let text = "x".repeat(300) + "y";
        let img = Mem(pv_image(0, 8192, 8192 - 100, &text));
        assert_eq!(read_metadata_text(&img, 4096).unwrap().unwrap(), text);
    }

    /// Hands every read over one byte at a time: the checksum, the NUL and the wrap must not
    /// depend on where pieces end.
    struct Bytewise(Mem);
    impl ReadAt for Bytewise {
        fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
            self.0.read_at(offset, len)
        }
        fn read_each(
            &self,
            offset: u64,
            len: usize,
            each: &mut dyn FnMut(&[u8]),
        ) -> io::Result<()> {
            for b in self.0.read_at(offset, len)? {
                each(&[b]);
            }
            Ok(())
        }
    }

    #[test]
    fn a_streamed_text_is_the_text_whatever_the_pieces() {
        let text = "x".repeat(300) + "y";
        for img in [
            pv_image(0, 8192, 8192 - 100, &text), // wraps round the area
            pv_image(1, 8192, 512, &text),
        ] {
            let dev = Bytewise(Mem(img.clone()));
            let c = read_committed(&dev, 4096).unwrap().unwrap();
            let mut got = Vec::new();
            stream_text(&dev, &c, &mut |p| got.extend_from_slice(p)).unwrap();
            assert_eq!(got, text.as_bytes());
            // One byte changed anywhere the checksum covers (here: after the NUL) fails it.
            let mut bad = img;
            let after_nul = 4096 + 512 + text.len() as u64 + 1;
            let wraps = c.offset + c.len > c.size;
            if !wraps {
                bad[after_nul as usize - 1] ^= 1; // the NUL itself
                let dev = Bytewise(Mem(bad));
                let e = stream_text(&dev, &c, &mut |_| {}).unwrap_err();
                assert!(e.to_string().contains("text checksum"), "{e}");
            }
        }
    }

    #[test]
    fn no_label_is_none_and_damage_is_an_error() {
        assert!(read_label(&Mem(vec![0u8; 8192])).unwrap().is_none());

        let good = pv_image(1, 8192, 512, "vg { seqno = 3 }");
        let mut bad_label = good.clone();
        bad_label[512 + 40] ^= 1; // inside the CRC-covered part of the label sector
        assert!(matches!(
            read_label(&Mem(bad_label)),
            Err(OnDiskError::Corrupt(_))
        ));

        let mut bad_text = good.clone();
        bad_text[4096 + 512 + 3] ^= 1;
        let e = read_metadata_text(&Mem(bad_text), 4096).unwrap_err();
        assert!(e.to_string().contains("text checksum"), "{e}");

        let mut bad_header = good.clone();
        bad_header[4096 + 45] ^= 1;
        let e = read_metadata_text(&Mem(bad_header), 4096).unwrap_err();
        assert!(e.to_string().contains("header checksum"), "{e}");

        let e = read_metadata_text(&Mem(good), 0).unwrap_err();
        assert!(matches!(e, OnDiskError::Corrupt(_)), "{e}");
    }

    #[test]
    fn an_ignored_or_empty_area_has_no_text() {
        let mut img = pv_image(1, 8192, 512, "vg { }");
        let h = 4096;
        img[h + 60..h + 64].copy_from_slice(&RAW_LOCN_IGNORED.to_le_bytes());
        let crc = lvm_crc(INITIAL_CRC, &img[h + 4..h + 512]);
        img[h..h + 4].copy_from_slice(&crc.to_le_bytes());
        assert!(read_metadata_text(&Mem(img), 4096).unwrap().is_none());
    }
}
