//! LVM's text metadata format: the `name { key = value ... }` tree LVM writes into each PV's
//! metadata area (and into /etc/lvm/backup), and the VG and LVs it describes.
//!
//! Read in one pass without building the tree: a VG of thousands of LVs is megabytes of text,
//! and only a few fields matter here (VG name, id, seqno and extent size; PV ids and where
//! their extents start; LV names, ids, VISIBLE, and which extents each LV's segments map).
//! Everything else is tokenised and skipped, so keys added by newer LVM releases do no harm.

use std::borrow::Cow;

/// A volume group as its metadata describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VgMetadata {
    pub name: String,
    /// The VG uuid as LVM prints it (with dashes).
    pub id: String,
    /// Bumped by every metadata change: the copy with the highest one is current.
    pub seqno: u64,
    /// PV uuids (with dashes).
    pub pv_ids: Vec<String>,
    /// The PVs, in the order the metadata lists them.
    pub pvs: Vec<PvMetadata>,
    /// Sectors (512 bytes) per extent.
    pub extent_size: u64,
    pub lvs: Vec<LvMetadata>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PvMetadata {
    /// The section name LV segments refer to (`pv0`).
    pub name: String,
    pub id: String,
    /// Sector where the PV's first extent starts.
    pub pe_start: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LvMetadata {
    pub name: String,
    pub id: String,
    pub visible: bool,
    pub segments: Vec<Segment>,
}

/// A run of an LV's extents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub start_extent: u64,
    pub extent_count: u64,
    /// For a linear segment (striped, one stripe): the PV (index into `pvs`) and its first
    /// physical extent there. `None` for anything else (striped over several PVs, thin, …).
    pub linear: Option<(usize, u64)>,
}

/// A scalar or array value, borrowed from the text where it can be.
#[derive(Debug, PartialEq)]
enum Value<'a> {
    Str(Cow<'a, str>),
    Number(&'a str),
    Array(Vec<Value<'a>>),
}

/// Which LVs to keep when a caller asks about a few (inspect, heal, restore): by name, or by id
/// (dashes removed; to find the LV whose LVM uuid a mapping carries). The others' sections are
/// skipped without building anything: a VG of thousands of LVs is megabytes of text, and the
/// SM hook asks about one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LvFilter {
    pub names: std::collections::BTreeSet<String>,
    pub ids: std::collections::BTreeSet<String>,
}

impl LvFilter {
    fn wants_name(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    fn wants_id(&self, id: &str) -> bool {
        !self.ids.is_empty() && self.ids.contains(&id.replace('-', ""))
    }
}

/// A metadata text cut down as it streams in, for a filtered read: the sections of LVs the
/// filter cannot want are dropped as they close, so a heal that asks about one LV of
/// thousands holds a few kilobytes instead of megabytes. What is kept is exactly what
/// `volume_group_with` then parses with the same filter, and it gives the same answer as on
/// the whole text: an LV section is dropped only when its name is not wanted and it has the
/// shape LVM writes — its first key `id`, a plain string (no escape) that is not a wanted id.
/// That is the point where the parser itself stops looking at an unwanted section and skips
/// to its end, as the Reducer does; any other shape (no id, the id later or not a string,
/// damage before it) is kept for the parser to judge, so a text LVM would reject is rejected
/// here too. The whole text must be UTF-8, dropped parts included, as before. Fed in pieces of
/// any size, byte for byte alike.
pub struct Reducer<'f> {
    filter: Option<&'f LvFilter>,
    out: Vec<u8>,
    lex: Lex,
    /// Sections open at this point of the text.
    depth: usize,
    /// The section open at depth 2 is `logical_volumes`.
    in_lvs: bool,
    /// The last name read (start, end in `out`), while only blanks and comments follow it:
    /// the name of a section if `{` comes next.
    name: Option<(usize, usize)>,
    in_word: bool,
    /// The LV section being read, when its name is not wanted.
    lv: Option<Unwanted>,
    /// Every byte so far is UTF-8, but for an incomplete character at the end (`partial`).
    utf8: bool,
    partial: Vec<u8>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lex {
    Text,
    Comment,
    Str { escaped: bool },
}

/// An LV section the filter does not want by name, held until it closes: dropped only if it
/// turns out to have LVM's shape and an id nobody asked for.
struct Unwanted {
    /// The section so far, from its name on.
    text: Vec<u8>,
    /// Where the string being read starts in `text`, and whether it has an escape.
    string: (usize, bool),
    shape: Shape,
}

/// How far an unwanted LV's section matches `id = "<plain string>"` as its first key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Start,
    /// `i`, then `id`, read.
    I,
    Id,
    /// `id` and blanks or comments: `=` must come next.
    Equals,
    /// `id =`: a string must come next.
    Value,
    /// Inside the id's string.
    InId,
    /// LVM's shape, with an id not wanted: the section goes.
    Droppable,
    /// Anything else, or a wanted id: the section stays.
    Kept,
}

impl Shape {
    /// The next byte of the section's own level (not inside a string or comment).
    fn step(self, b: u8) -> Shape {
        let blank = matches!(b, b' ' | b'\t' | b'\r' | b'\n');
        match (self, b) {
            (Shape::Droppable | Shape::Kept | Shape::InId, _) => self,
            (Shape::Start | Shape::Equals | Shape::Value, _) if blank || b == b'#' => self,
            (Shape::Start, b'i') => Shape::I,
            (Shape::I, b'd') => Shape::Id,
            (Shape::Id, b'=') => Shape::Value,
            (Shape::Id, _) if blank || b == b'#' => Shape::Equals,
            (Shape::Equals, b'=') => Shape::Value,
            (Shape::Value, b'"') => Shape::InId,
            _ => Shape::Kept,
        }
    }
}

impl<'f> Reducer<'f> {
    pub fn new(filter: Option<&'f LvFilter>) -> Self {
        Reducer {
            filter,
            out: Vec::new(),
            lex: Lex::Text,
            depth: 0,
            in_lvs: false,
            name: None,
            in_word: false,
            lv: None,
            utf8: true,
            partial: Vec::new(),
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        if self.filter.is_none() {
            self.out.extend_from_slice(bytes);
            return;
        }
        self.check_utf8(bytes);
        for &b in bytes {
            self.byte(b);
        }
    }

    /// The text kept; Err when the text is not UTF-8.
    pub fn finish(mut self) -> Result<String, String> {
        // A section still open at the end is kept, so that the parser says it is not closed.
        if let Some(lv) = self.lv.take() {
            self.out.extend_from_slice(&lv.text);
        }
        if !self.utf8 || !self.partial.is_empty() {
            return Err("metadata text is not UTF-8".to_string());
        }
        String::from_utf8(self.out).map_err(|_| "metadata text is not UTF-8".to_string())
    }

    /// Whether the text so far is UTF-8, a piece at a time: a character cut by the end of a
    /// piece is completed from the next.
    fn check_utf8(&mut self, mut bytes: &[u8]) {
        if !self.utf8 {
            return;
        }
        if let Some(&lead) = self.partial.first() {
            let width = match lead {
                0xc0..=0xdf => 2,
                0xe0..=0xef => 3,
                _ => 4,
            };
            let more = (width - self.partial.len()).min(bytes.len());
            self.partial.extend_from_slice(&bytes[..more]);
            bytes = &bytes[more..];
            if self.partial.len() < width {
                return;
            }
            self.utf8 = std::str::from_utf8(&self.partial).is_ok();
            self.partial.clear();
            if !self.utf8 {
                return;
            }
        }
        if let Err(e) = std::str::from_utf8(bytes) {
            match e.error_len() {
                Some(_) => self.utf8 = false,
                None => self.partial = bytes[e.valid_up_to()..].to_vec(),
            }
        }
    }

    fn byte(&mut self, b: u8) {
        match &mut self.lv {
            Some(lv) => lv.text.push(b),
            None => self.out.push(b),
        }
        match self.lex {
            Lex::Comment => {
                if b == b'\n' {
                    self.lex = Lex::Text;
                }
                return;
            }
            Lex::Str { escaped: true } => {
                self.lex = Lex::Str { escaped: false };
                return;
            }
            Lex::Str { escaped: false } => {
                match b {
                    b'\\' => {
                        self.lex = Lex::Str { escaped: true };
                        if let Some(lv) = &mut self.lv {
                            lv.string.1 = true;
                        }
                    }
                    b'"' => {
                        self.lex = Lex::Text;
                        self.string_read();
                    }
                    _ => {}
                }
                return;
            }
            Lex::Text => {}
        }
        if self.depth == 3 {
            if let Some(lv) = &mut self.lv {
                lv.shape = lv.shape.step(b);
            }
        }
        let word = !matches!(
            b,
            b' ' | b'\t' | b'\r' | b'\n' | b'#' | b'=' | b'{' | b'}' | b'[' | b']' | b',' | b'"'
        );
        if word {
            if self.lv.is_some() {
                return; // names inside an unwanted LV's section do not matter
            }
            let at = self.out.len();
            match (&mut self.name, self.in_word) {
                (Some((_, end)), true) => *end = at,
                _ => self.name = Some((at - 1, at)),
            }
            self.in_word = true;
            return;
        }
        self.in_word = false;
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => {}
            b'#' => self.lex = Lex::Comment,
            b'"' => {
                self.name = None;
                self.lex = Lex::Str { escaped: false };
                if let Some(lv) = &mut self.lv {
                    lv.string = (lv.text.len(), false);
                }
            }
            b'{' => self.open(),
            b'}' => self.close(),
            _ => self.name = None,
        }
    }

    fn open(&mut self) {
        let name = self.name.take();
        self.depth += 1;
        if self.lv.is_some() {
            return;
        }
        match self.depth {
            2 => self.in_lvs = name.is_some_and(|(s, e)| &self.out[s..e] == b"logical_volumes"),
            3 if self.in_lvs => {
                let Some((start, end)) = name else { return };
                let filter = self.filter.expect("only a filtered read is reduced");
                let wanted = std::str::from_utf8(&self.out[start..end])
                    .map_or(true, |n| filter.wants_name(n));
                if !wanted {
                    self.lv = Some(Unwanted {
                        text: self.out.split_off(start),
                        string: (0, false),
                        shape: Shape::Start,
                    });
                }
            }
            _ => {}
        }
    }

    fn close(&mut self) {
        self.name = None;
        self.depth = self.depth.saturating_sub(1);
        if self.depth == 2 {
            if let Some(lv) = self.lv.take() {
                if lv.shape != Shape::Droppable {
                    self.out.extend_from_slice(&lv.text);
                }
            }
        }
    }

    /// A string inside an unwanted LV's section ended: if it is the section's id, the section
    /// goes unless the id is wanted (or has an escape: the parser decides).
    fn string_read(&mut self) {
        let (Some(lv), Some(filter)) = (&mut self.lv, self.filter) else {
            return;
        };
        if lv.shape != Shape::InId {
            return;
        }
        let (start, escaped) = lv.string;
        let content = &lv.text[start..lv.text.len() - 1];
        let wanted = escaped || std::str::from_utf8(content).map_or(true, |id| filter.wants_id(id));
        lv.shape = if wanted {
            Shape::Kept
        } else {
            Shape::Droppable
        };
    }
}

/// The VG a metadata text (a trailing NUL, as stored on disk, ends it) describes.
#[cfg(test)]
pub fn volume_group(text: &str) -> Result<VgMetadata, String> {
    volume_group_with(text, None)
}

/// `volume_group`, keeping only the LVs `filter` wants (all of them without one).
pub fn volume_group_with(text: &str, filter: Option<&LvFilter>) -> Result<VgMetadata, String> {
    let text = text.split('\0').next().unwrap_or("");
    let mut t = Tokens {
        s: text.as_bytes(),
        text,
        i: 0,
    };
    let mut path: Vec<&str> = Vec::new();
    let (mut contents_ok, mut version) = (false, None);
    let mut vg: Option<VgMetadata> = None;
    let mut item_id: Option<String> = None; // the id of the PV or LV section being read
    let mut visible = false;
    let mut pe_start: Option<u64> = None;
    let mut segments: Vec<Segment> = Vec::new();
    let mut seg = SegmentText::default();
    // Inside an LV section the filter does not want by name: skipped once its id is known
    // (LVM writes `id` first) and not wanted either.
    let mut unwanted_lv = false;
    loop {
        let Some(c) = t.peek() else {
            if !path.is_empty() {
                return t.err("section not closed");
            }
            break;
        };
        if c == b'}' {
            t.i += 1;
            let Some(name) = path.pop() else {
                return t.err("`}` without a section");
            };
            if let (Some(vg), 3) = (vg.as_ref(), path.len()) {
                if path[1] == "logical_volumes" {
                    segments.push(std::mem::take(&mut seg).finish(vg, name)?);
                }
            }
            if let (Some(vg), 2) = (vg.as_mut(), path.len()) {
                let id = item_id.take();
                match path[1] {
                    "physical_volumes" => {
                        let id = id.ok_or_else(|| format!("PV {name} has no id"))?;
                        vg.pv_ids.push(id.clone());
                        vg.pvs.push(PvMetadata {
                            name: name.to_string(),
                            id,
                            pe_start: pe_start.take().unwrap_or(0),
                        });
                    }
                    "logical_volumes" => vg.lvs.push(LvMetadata {
                        name: name.to_string(),
                        id: id.ok_or_else(|| format!("LV {name} has no id"))?,
                        visible: std::mem::take(&mut visible),
                        segments: std::mem::take(&mut segments),
                    }),
                    _ => {}
                }
            }
            continue;
        }
        let key = t.identifier()?;
        match t.peek() {
            Some(b'{') => {
                t.i += 1;
                if path.is_empty() {
                    if vg.is_some() {
                        return Err("more than one volume group section".into());
                    }
                    vg = Some(VgMetadata {
                        name: key.to_string(),
                        id: String::new(),
                        seqno: 0,
                        pv_ids: Vec::new(),
                        pvs: Vec::new(),
                        extent_size: 0,
                        lvs: Vec::new(),
                    });
                }
                path.push(key);
                if path.len() == 3 {
                    item_id = None;
                    visible = false;
                    pe_start = None;
                    segments.clear();
                    unwanted_lv =
                        path[1] == "logical_volumes" && filter.is_some_and(|f| !f.wants_name(key));
                }
                if path.len() == 4 {
                    seg = SegmentText::default();
                }
            }
            Some(b'=') => {
                t.i += 1;
                let value = t.value()?;
                match (path.len(), key, value) {
                    (0, "contents", Value::Str(c)) => contents_ok = c == "Text Format Volume Group",
                    (0, "version", Value::Number(n)) => version = Some(n),
                    (1, "id", Value::Str(id)) => vg.as_mut().expect("in the VG").id = id.into(),
                    (1, "seqno", Value::Number(n)) => {
                        vg.as_mut().expect("in the VG").seqno =
                            n.parse().map_err(|_| format!("bad seqno {n:?}"))?
                    }
                    (1, "extent_size", Value::Number(n)) => {
                        vg.as_mut().expect("in the VG").extent_size =
                            n.parse().map_err(|_| format!("bad extent_size {n:?}"))?
                    }
                    (3, "id", Value::Str(id)) => {
                        if unwanted_lv && !filter.is_some_and(|f| f.wants_id(&id)) {
                            t.skip_section()?;
                            path.pop();
                            unwanted_lv = false;
                            continue;
                        }
                        item_id = Some(id.into())
                    }
                    (3, "status", Value::Array(flags)) => {
                        visible = flags.contains(&Value::Str("VISIBLE".into()))
                    }
                    (3, "pe_start", Value::Number(n)) => {
                        pe_start = Some(n.parse().map_err(|_| format!("bad pe_start {n:?}"))?)
                    }
                    (4, "start_extent", Value::Number(n)) => seg.start = n.parse().ok(),
                    (4, "extent_count", Value::Number(n)) => seg.count = n.parse().ok(),
                    (4, "type", Value::Str(kind)) => seg.striped = kind == "striped",
                    (4, "stripe_count", Value::Number(n)) => seg.stripes = n.parse().ok(),
                    (4, "stripes", Value::Array(items)) => {
                        if let [Value::Str(pv), Value::Number(pe)] = items.as_slice() {
                            seg.first = Some((pv.to_string(), pe.parse().ok()));
                        }
                    }
                    _ => {}
                }
            }
            _ => return t.err("expected `=` or `{` after a name"),
        }
    }
    if !contents_ok {
        return Err("not LVM volume group metadata (no `contents`)".into());
    }
    if version != Some("1") {
        return Err(format!("unsupported metadata version {version:?}"));
    }
    let vg = vg.ok_or("no volume group section")?;
    if vg.id.is_empty() {
        return Err("the VG has no id".into());
    }
    if vg.seqno == 0 {
        return Err("the VG has no seqno".into());
    }
    Ok(vg)
}

/// An LV segment's fields as read, before they are checked.
#[derive(Default)]
struct SegmentText {
    start: Option<u64>,
    count: Option<u64>,
    striped: bool,
    stripes: Option<u64>,
    first: Option<(String, Option<u64>)>,
}

impl SegmentText {
    fn finish(self, vg: &VgMetadata, name: &str) -> Result<Segment, String> {
        let (Some(start_extent), Some(extent_count)) = (self.start, self.count) else {
            return Err(format!(
                "segment {name} has no start_extent or extent_count"
            ));
        };
        let linear = match (self.striped, self.stripes, self.first) {
            (true, Some(1), Some((pv, Some(pe)))) => {
                let index =
                    vg.pvs.iter().position(|p| p.name == pv).ok_or_else(|| {
                        format!("segment {name} names PV {pv}, which the VG lacks")
                    })?;
                Some((index, pe))
            }
            _ => None,
        };
        Ok(Segment {
            start_extent,
            extent_count,
            linear,
        })
    }
}

struct Tokens<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

impl<'a> Tokens<'a> {
    fn err<T>(&self, what: &str) -> Result<T, String> {
        let line = 1 + self.s[..self.i.min(self.s.len())]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        Err(format!("metadata text, line {line}: {what}"))
    }

    /// Skip to just past the `}` that closes the section being read (strings and comments
    /// respected), building nothing.
    fn skip_section(&mut self) -> Result<(), String> {
        let mut depth = 1usize;
        while self.i < self.s.len() {
            match self.s[self.i] {
                b'"' => {
                    self.i += 1;
                    while self.i < self.s.len() && self.s[self.i] != b'"' {
                        self.i += if self.s[self.i] == b'\\' { 2 } else { 1 };
                    }
                }
                b'#' => {
                    while self.i < self.s.len() && self.s[self.i] != b'\n' {
                        self.i += 1;
                    }
                    continue;
                }
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        self.i += 1;
                        return Ok(());
                    }
                }
                _ => {}
            }
            self.i += 1;
        }
        self.err("section not closed")
    }

    /// The next significant byte, after white space and `#` comments.
    fn peek(&mut self) -> Option<u8> {
        while self.i < self.s.len() {
            match self.s[self.i] {
                b' ' | b'\t' | b'\r' | b'\n' => self.i += 1,
                b'#' => {
                    while self.i < self.s.len() && self.s[self.i] != b'\n' {
                        self.i += 1;
                    }
                }
                _ => break,
            }
        }
        self.s.get(self.i).copied()
    }

    fn word(&mut self, part_of: impl Fn(u8) -> bool) -> &'a str {
        let start = self.i;
        while self.i < self.s.len() && part_of(self.s[self.i]) {
            self.i += 1;
        }
        // Only ASCII bytes end a word, so both ends are on character boundaries.
        &self.text[start..self.i]
    }

    fn identifier(&mut self) -> Result<&'a str, String> {
        let w = self.word(|b| {
            !matches!(
                b,
                b' ' | b'\t'
                    | b'\r'
                    | b'\n'
                    | b'#'
                    | b'='
                    | b'{'
                    | b'}'
                    | b'['
                    | b']'
                    | b','
                    | b'"'
            )
        });
        if w.is_empty() {
            return self.err("expected a name");
        }
        Ok(w)
    }

    fn value(&mut self) -> Result<Value<'a>, String> {
        match self.peek() {
            Some(b'"') => self.string().map(Value::Str),
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    match self.peek() {
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Value::Array(items));
                        }
                        Some(b',') => self.i += 1,
                        Some(_) => items.push(self.value()?),
                        None => return self.err("array not closed"),
                    }
                }
            }
            Some(_) => {
                let n = self.word(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'));
                if n.is_empty() || n.parse::<f64>().is_err() {
                    return self.err("expected a string, number or array");
                }
                Ok(Value::Number(n))
            }
            None => self.err("value missing"),
        }
    }

    fn string(&mut self) -> Result<Cow<'a, str>, String> {
        self.i += 1; // the opening quote
        let start = self.i;
        let mut escaped = false;
        while self.i < self.s.len() {
            match self.s[self.i] {
                b'"' => {
                    let raw = &self.text[start..self.i];
                    self.i += 1;
                    if !escaped {
                        return Ok(Cow::Borrowed(raw));
                    }
                    let mut out = String::with_capacity(raw.len());
                    let mut chars = raw.chars();
                    while let Some(c) = chars.next() {
                        out.push(if c == '\\' {
                            chars.next().unwrap_or('\\')
                        } else {
                            c
                        });
                    }
                    return Ok(Cow::Owned(out));
                }
                b'\\' => {
                    escaped = true;
                    self.i += 2;
                }
                _ => self.i += 1,
            }
        }
        self.err("string not closed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like what LVM 2.03 writes (vgcfgbackup of an SR VG), comments included.
    const SAMPLE: &str = r#"# Generated by LVM2 version 2.03.16(2) (2022-05-18): Wed Nov 25 20:33:01 2026

contents = "Text Format Volume Group"
version = 1

description = "Created *after* executing 'vgcreate VG_XenStorage-9a3c \"/dev/ubda\"'"

creation_host = "dom0"	# Linux dom0 6.1.0
creation_time = 1764102781	# Wed Nov 25 20:33:01 2026

VG_XenStorage-9a3c {
	id = "K2BweQ-UkrI-a1b2-c3d4-e5f6-g7h8-i9j0k1"
	seqno = 7
	format = "lvm2"
	status = ["RESIZEABLE", "READ", "WRITE"]
	flags = []
	extent_size = 8192
	max_lv = 0
	max_pv = 0
	metadata_copies = 0

	physical_volumes {

		pv0 {
			id = "pv0000-aaaa-bbbb-cccc-dddd-eeee-ffffff"
			device = "/dev/ubda"	# Hint only

			status = ["ALLOCATABLE"]
			flags = []
			dev_size = 524288	# 256 Megabytes
			pe_start = 2048
			pe_count = 63
		}
	}

	logical_volumes {

		VHD-0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5 {
			id = "X4HzXT-jZRq-DfaP-0000-1111-2222-333333"
			status = ["READ", "WRITE", "VISIBLE"]
			flags = []
			tags = ["a\"quoted\\tag"]
			creation_time = 1764102781
			creation_host = "dom0"
			segment_count = 1

			segment1 {
				start_extent = 0
				extent_count = 1
				type = "striped"
				stripe_count = 1	# linear
				stripes = [
					"pv0", 0
				]
			}
		}

		hidden_lv {
			id = "HHHHHH-jZRq-DfaP-0000-1111-2222-333333"
			status = ["READ", "WRITE"]
			segment_count = 0
		}
	}
}
"#;

    #[test]
    fn reads_the_volume_group_and_its_volumes() {
        let vg = volume_group(&format!("{SAMPLE}\0\0garbage after the NUL")).unwrap();
        assert_eq!(vg.name, "VG_XenStorage-9a3c");
        assert_eq!(vg.id, "K2BweQ-UkrI-a1b2-c3d4-e5f6-g7h8-i9j0k1");
        assert_eq!(vg.seqno, 7);
        assert_eq!(vg.pv_ids, vec!["pv0000-aaaa-bbbb-cccc-dddd-eeee-ffffff"]);
        assert_eq!(vg.lvs.len(), 2);
        assert_eq!(vg.lvs[0].name, "VHD-0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5");
        assert_eq!(vg.lvs[0].id, "X4HzXT-jZRq-DfaP-0000-1111-2222-333333");
        assert!(vg.lvs[0].visible);
        assert!(!vg.lvs[1].visible);
        assert_eq!(vg.extent_size, 8192);
        assert_eq!(
            vg.pvs,
            vec![PvMetadata {
                name: "pv0".into(),
                id: "pv0000-aaaa-bbbb-cccc-dddd-eeee-ffffff".into(),
                pe_start: 2048
            }]
        );
        assert_eq!(
            vg.lvs[0].segments,
            vec![Segment {
                start_extent: 0,
                extent_count: 1,
                linear: Some((0, 0))
            }]
        );
        assert!(vg.lvs[1].segments.is_empty());
        let mut t = Tokens {
            s: br#""a\"quoted\\tag""#,
            text: r#""a\"quoted\\tag""#,
            i: 0,
        };
        assert_eq!(t.value().unwrap(), Value::Str("a\"quoted\\tag".into()));
    }

    #[test]
    fn a_filter_keeps_the_lvs_asked_for_by_name_or_id_and_skips_the_rest() {
        let all = volume_group(SAMPLE).unwrap();
        let by_name = LvFilter {
            names: ["hidden_lv".to_string()].into(),
            ids: Default::default(),
        };
        let vg = volume_group_with(SAMPLE, Some(&by_name)).unwrap();
        assert_eq!(vg.lvs, vec![all.lvs[1].clone()]);
        assert_eq!(
            (vg.id, vg.seqno, vg.pvs),
            (all.id.clone(), all.seqno, all.pvs.clone())
        );
        let by_id = LvFilter {
            names: Default::default(),
            ids: ["X4HzXTjZRqDfaP000011112222333333".to_string()].into(),
        };
        let vg = volume_group_with(SAMPLE, Some(&by_id)).unwrap();
        assert_eq!(vg.lvs, vec![all.lvs[0].clone()]);
        let none = volume_group_with(SAMPLE, Some(&LvFilter::default())).unwrap();
        assert!(none.lvs.is_empty());
        // A skipped section's braces inside strings and comments do not confuse the skipper.
        let tricky = SAMPLE.replace(
            "creation_host = \"dom0\"\n\t\t\tsegment_count = 1",
            "creation_host = \"dom{0}\" # a } in a comment\n\t\t\tsegment_count = 1",
        );
        assert_ne!(tricky, SAMPLE);
        let vg = volume_group_with(&tricky, Some(&by_name)).unwrap();
        assert_eq!(vg.lvs.len(), 1);
    }

    /// `text` through a Reducer in pieces of `piece` bytes.
    fn reduced(text: &str, filter: &LvFilter, piece: usize) -> Result<String, String> {
        let mut r = Reducer::new(Some(filter));
        for p in text.as_bytes().chunks(piece.max(1)) {
            r.feed(p);
        }
        r.finish()
    }

    fn filter(names: &[&str], ids: &[&str]) -> LvFilter {
        LvFilter {
            names: names.iter().map(|s| s.to_string()).collect(),
            ids: ids.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// SAMPLE made harder for a reader that cuts sections out: braces, quotes and `#` in
    /// strings and comments, a name split from its `{` by a comment, an escape in an id, a
    /// wanted id quoted in another LV's tags, an id after other keys, odd LV names.
    fn tricky_sample() -> String {
        let extra = r##"
		lv.with+odd_chars-1 # its { comes on the next line
		{
			id = "ODD111-jZRq-DfaP-0000-1111-2222-333333"
			status = ["READ", "WRITE", "VISIBLE"]
			tags = ["X4HzXT-jZRq-DfaP-0000-1111-2222-333333", "{", "}", "#", "a\"b"]
			segment_count = 0
		}

		escaped_id {
			id = "ESC\222-jZRq-DfaP-0000-1111-2222-333333"
			status = ["READ", "WRITE", "VISIBLE"]
			segment_count = 0
		}

		# logical_volumes { not_a_section { id = "x" }
		last_lv {
			status = ["VISIBLE"]	# the id after the status, and } in this comment
			id = "LAST00-jZRq-DfaP-0000-1111-2222-333333"
			segment_count = 0
		}
"##;
        SAMPLE.replace("\t\thidden_lv {", &format!("{extra}\n\t\thidden_lv {{"))
    }

    #[test]
    fn a_reduced_text_parses_to_what_the_whole_text_does() {
        let texts = [
            SAMPLE.to_string(),
            tricky_sample(),
            // Damaged: the parser's verdict on the reduced text is its verdict on the whole.
            tricky_sample().replace("\t\t}\n\n\t\tescaped_id", "\t\t\n\n\t\tescaped_id"),
            SAMPLE[..SAMPLE.len() / 2].to_string(),
            SAMPLE.replace("segment_count = 0\n\t\t}", "segment_count = \"0\n\t\t}"),
        ];
        // Another LV's section damaged where the parser still looks (up to its id): the whole
        // text is refused, so the reduced one must be too (found by an adversary: LVM could
        // not read such a VG, and a heal had proved a ghost on it).
        let hidden = "\t\thidden_lv {\n\t\t\tid = \"HHHHHH-jZRq-DfaP-0000-1111-2222-333333\"\n";
        let damaged = [
            "\t\thidden_lv {\n",
            "\t\thidden_lv {\n\t\t\tseg { id = \"HHHHHH-jZRq-DfaP-0000-1111-2222-333333\" }\n",
            "\t\thidden_lv {\n\t\t\tid = 5\n",
            "\t\thidden_lv {\n\t\t\tpe_start = 1.5\n\t\t\tid = \"HHHHHH-jZRq\"\n",
            "\t\thidden_lv {\n\t\t\tstatus = VISIBLE\n\t\t\tid = \"HHHHHH-jZRq\"\n",
            "\t\thidden_lv {\n\t\t\tgarbage words\n\t\t\tid = \"HHHHHH-jZRq\"\n",
            "\t\thidden_lv {\n\t\t\tidx = \"HHHHHH-jZRq\"\n",
            "\t\thidden_lv {\n\t\t\tid \"HHHHHH-jZRq\"\n",
            "\t\thidden_lv {\n\t\t\tid = [\"HHHHHH-jZRq\"]\n",
        ];
        let mut texts = texts.to_vec();
        for d in damaged {
            let t = SAMPLE.replace(hidden, d);
            assert_ne!(t, SAMPLE);
            assert!(volume_group(&t).is_err(), "{d:?}");
            texts.push(t);
        }
        // Still LVM's shape after a comment or on one line: dropped, and the answer the same.
        for fine in [
            "\t\thidden_lv { # a comment\n\t\t\tid=\"HHHHHH-jZRq-DfaP-0000-1111-2222-333333\"\n",
            "\t\thidden_lv {\n\t\t\tid # a comment\n\t\t\t= \"HHHHHH-jZRq-DfaP-0000-1111-2222-333333\"\n",
        ] {
            texts.push(SAMPLE.replace(hidden, fine));
        }
        let filters = [
            filter(&[], &[]),
            filter(&["hidden_lv"], &[]),
            filter(&["VHD-0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"], &[]),
            filter(&["lv.with+odd_chars-1"], &[]),
            filter(&["no_such_lv"], &["X4HzXTjZRqDfaP000011112222333333"]),
            filter(&[], &["ESC222jZRqDfaP000011112222333333"]),
            filter(&[], &["LAST00jZRqDfaP000011112222333333"]),
            filter(&["last_lv"], &["HHHHHHjZRqDfaP000011112222333333"]),
            filter(&[], &["nothing-like-any-id"]),
        ];
        for text in &texts {
            for f in &filters {
                let whole = volume_group_with(text, Some(f));
                for piece in [1, 2, 3, 7, 64, text.len()] {
                    let cut = reduced(text, f, piece);
                    let part = cut.clone().and_then(|t| volume_group_with(&t, Some(f)));
                    match (&whole, &part) {
                        (Ok(a), Ok(b)) => assert_eq!(a, b, "{f:?} piece {piece}"),
                        (Err(_), Err(_)) => {}
                        _ => panic!(
                            "{f:?} piece {piece}: whole {whole:?}, reduced {part:?}\n{cut:?}"
                        ),
                    }
                }
            }
        }
        // The tricky LVs are really there and really found.
        let vg = volume_group_with(&tricky_sample(), None).unwrap();
        assert_eq!(vg.lvs.len(), 5);
        let esc = filter(&[], &["ESC222jZRqDfaP000011112222333333"]);
        let vg = volume_group_with(&tricky_sample(), Some(&esc)).unwrap();
        assert_eq!(vg.lvs[0].name, "escaped_id");
        let last = filter(&[], &["LAST00jZRqDfaP000011112222333333"]);
        let cut = reduced(&tricky_sample(), &last, 5).unwrap();
        assert!(
            cut.contains("last_lv {") && !cut.contains("hidden_lv"),
            "{cut}"
        );
        // LVM's shape with an id nobody asked for goes; the id after other keys stays.
        assert!(
            !cut.contains("VHD-0c1d2e3f") && cut.contains("escaped_id {"),
            "{cut}"
        );
    }

    /// Not UTF-8 anywhere, a dropped section included, is refused as the whole text was; a
    /// character cut between two pieces is not.
    #[test]
    fn a_reduced_text_is_utf8_checked_whole() {
        let f = filter(&["hidden_lv"], &[]);
        let accented = SAMPLE.replace(
            "creation_host = \"dom0\"",
            "creation_host = \"d\u{f6}m\u{20ac}0\"",
        );
        assert_ne!(accented, SAMPLE);
        for piece in 1..8 {
            assert!(reduced(&accented, &f, piece).is_ok(), "{piece}");
            let mut bytes = accented.clone().into_bytes();
            let at = accented.rfind("d\u{f6}m").unwrap() + 1;
            bytes[at] = 0xff; // inside the VHD LV's section, which is dropped
            let mut r = Reducer::new(Some(&f));
            for p in bytes.chunks(piece) {
                r.feed(p);
            }
            assert!(r.finish().is_err(), "{piece}");
        }
    }

    #[test]
    fn a_reduced_text_keeps_only_the_sections_asked_for() {
        let mut lvs = String::new();
        for i in 0..2000 {
            lvs += &format!(
                "\t\tVHD-{i:08} {{\n\t\t\tid = \"ID{i:04}-jZRq-DfaP-0000-1111-2222-333333\"\n\t\t\tstatus = [\"VISIBLE\"] # {{\n\t\t\tsegment_count = 0\n\t\t}}\n"
            );
        }
        let text = SAMPLE.replace("\t\thidden_lv {", &format!("{lvs}\t\thidden_lv {{"));
        let f = filter(&["VHD-00001234"], &["ID0042jZRqDfaP000011112222333333"]);
        let cut = reduced(&text, &f, 65536).unwrap();
        // What stays besides: the blanks between the LVs dropped.
        assert!(
            cut.len() < text.len() / 20,
            "{} bytes kept of {}",
            cut.len(),
            text.len()
        );
        assert_eq!(cut.matches("VHD-").count(), 2, "{cut}");
        let vg = volume_group_with(&cut, Some(&f)).unwrap();
        let names: Vec<_> = vg.lvs.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["VHD-00000042", "VHD-00001234"]);
        // Unfiltered, nothing is cut.
        let mut all = Reducer::new(None);
        all.feed(text.as_bytes());
        assert_eq!(all.finish().unwrap(), text);
    }

    #[test]
    fn refuses_what_is_not_vg_metadata() {
        assert!(volume_group("version = 1\nvg { id = \"x\" seqno = 1 }").is_err());
        let two = "contents = \"Text Format Volume Group\"\nversion = 1\na { id = \"x\" seqno = 1 }\nb { id = \"y\" seqno = 1 }";
        assert!(volume_group(two).is_err());
        let no_seqno = "contents = \"Text Format Volume Group\"\nversion = 1\na { id = \"x\" }";
        assert!(volume_group(no_seqno).is_err());
        let ok = "contents = \"Text Format Volume Group\"\nversion = 1\na { id = \"x\" seqno = 1 }";
        assert_eq!(volume_group(ok).unwrap().name, "a");
    }

    #[test]
    fn malformed_text_is_an_error_with_a_line_number() {
        for bad in [
            "a {\n b = 1\n",
            "a = \"open",
            "a = [1, 2",
            "a = =",
            "= 1",
            "a\n}",
        ] {
            let e = volume_group(bad).unwrap_err();
            assert!(e.starts_with("metadata text, line "), "{bad:?}: {e}");
        }
    }
}
