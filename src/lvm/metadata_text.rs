//! LVM's text metadata format: the `name { key = value ... }` tree LVM writes into each PV's
//! metadata area (and into /etc/lvm/backup), and the VG and LVs it describes.
//!
//! Only what dmheal needs is extracted (VG name, id, seqno, PV ids, LV names, ids and status);
//! everything else is parsed and ignored, so new keys in newer LVM releases do not break it.

use std::collections::BTreeMap;

/// One value in the tree.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Array(Vec<Value>),
    Section(Section),
}

/// A section's entries, in file order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Section(pub Vec<(String, Value)>);

impl Section {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.get(key)? {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub fn section(&self, key: &str) -> Option<&Section> {
        match self.get(key)? {
            Value::Section(s) => Some(s),
            _ => None,
        }
    }
    /// The sub-sections, by name.
    pub fn sections(&self) -> impl Iterator<Item = (&str, &Section)> {
        self.0.iter().filter_map(|(k, v)| match v {
            Value::Section(s) => Some((k.as_str(), s)),
            _ => None,
        })
    }
}

/// Parse a whole metadata text (a trailing NUL, as stored on disk, ends it).
pub fn parse(text: &str) -> Result<Section, String> {
    let text = text.split('\0').next().unwrap_or("");
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let root = p.entries(false)?;
    Ok(root)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err<T>(&self, what: &str) -> Result<T, String> {
        let line = 1 + self.s[..self.i.min(self.s.len())]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        Err(format!("metadata text, line {line}: {what}"))
    }

    /// Skip white space and `#` comments.
    fn skip(&mut self) {
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
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip();
        self.s.get(self.i).copied()
    }

    /// Entries until `}` (nested) or the end of the text (top level).
    fn entries(&mut self, nested: bool) -> Result<Section, String> {
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None if nested => return self.err("section not closed"),
                None => return Ok(Section(out)),
                Some(b'}') if nested => {
                    self.i += 1;
                    return Ok(Section(out));
                }
                Some(_) => {
                    let key = self.identifier()?;
                    match self.peek() {
                        Some(b'{') => {
                            self.i += 1;
                            out.push((key, Value::Section(self.entries(true)?)));
                        }
                        Some(b'=') => {
                            self.i += 1;
                            out.push((key, self.value()?));
                        }
                        _ => return self.err("expected `=` or `{` after a name"),
                    }
                }
            }
        }
    }

    fn identifier(&mut self) -> Result<String, String> {
        let start = self.i;
        while self.i < self.s.len()
            && !matches!(
                self.s[self.i],
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
        {
            self.i += 1;
        }
        if self.i == start {
            return self.err("expected a name");
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn value(&mut self) -> Result<Value, String> {
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
            Some(_) => self.number(),
            None => self.err("value missing"),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.i += 1; // the opening quote
        let mut out = Vec::new();
        while self.i < self.s.len() {
            match self.s[self.i] {
                b'"' => {
                    self.i += 1;
                    return String::from_utf8(out).or_else(|_| self.err("string is not UTF-8"));
                }
                b'\\' if self.i + 1 < self.s.len() => {
                    out.push(self.s[self.i + 1]);
                    self.i += 2;
                }
                b => {
                    out.push(b);
                    self.i += 1;
                }
            }
        }
        self.err("string not closed")
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.i;
        while self.i < self.s.len()
            && matches!(
                self.s[self.i],
                b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'
            )
        {
            self.i += 1;
        }
        let word = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
        if let Ok(i) = word.parse::<i64>() {
            return Ok(Value::Int(i));
        }
        match word.parse::<f64>() {
            Ok(f) => Ok(Value::Float(f)),
            Err(_) => self.err("expected a string, number or array"),
        }
    }
}

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
    pub lvs: Vec<LvMetadata>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LvMetadata {
    pub name: String,
    pub id: String,
    pub visible: bool,
}

/// The VG a parsed metadata text describes.
pub fn volume_group(root: &Section) -> Result<VgMetadata, String> {
    if root.str("contents") != Some("Text Format Volume Group") {
        return Err("not LVM volume group metadata (no `contents`)".into());
    }
    if root.int("version") != Some(1) {
        return Err(format!(
            "unsupported metadata version {:?}",
            root.get("version")
        ));
    }
    let mut vgs = root.sections();
    let (name, vg) = vgs.next().ok_or("no volume group section")?;
    if vgs.next().is_some() {
        return Err("more than one volume group section".into());
    }
    let id = vg.str("id").ok_or("the VG has no id")?.to_string();
    let seqno = vg
        .int("seqno")
        .and_then(|s| u64::try_from(s).ok())
        .ok_or("the VG has no seqno")?;
    let mut pv_ids = Vec::new();
    for (pv, s) in vg
        .section("physical_volumes")
        .map(|s| s.sections().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        pv_ids.push(
            s.str("id")
                .ok_or_else(|| format!("PV {pv} has no id"))?
                .to_string(),
        );
    }
    let mut lvs = Vec::new();
    for (lv, s) in vg
        .section("logical_volumes")
        .map(|s| s.sections().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let id = s.str("id").ok_or_else(|| format!("LV {lv} has no id"))?;
        let visible = matches!(s.get("status"), Some(Value::Array(flags))
            if flags.iter().any(|f| *f == Value::Str("VISIBLE".into())));
        lvs.push(LvMetadata {
            name: lv.to_string(),
            id: id.to_string(),
            visible,
        });
    }
    Ok(VgMetadata {
        name: name.to_string(),
        id,
        seqno,
        pv_ids,
        lvs,
    })
}

/// Index of LVs by name (the caller's lookups stay linear at thousands of LVs).
pub fn by_name(vg: &VgMetadata) -> BTreeMap<&str, &LvMetadata> {
    vg.lvs.iter().map(|lv| (lv.name.as_str(), lv)).collect()
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
        let root = parse(&format!("{SAMPLE}\0\0garbage after the NUL")).unwrap();
        let vg = volume_group(&root).unwrap();
        assert_eq!(vg.name, "VG_XenStorage-9a3c");
        assert_eq!(vg.id, "K2BweQ-UkrI-a1b2-c3d4-e5f6-g7h8-i9j0k1");
        assert_eq!(vg.seqno, 7);
        assert_eq!(vg.pv_ids, vec!["pv0000-aaaa-bbbb-cccc-dddd-eeee-ffffff"]);
        assert_eq!(vg.lvs.len(), 2);
        assert_eq!(vg.lvs[0].name, "VHD-0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5");
        assert_eq!(vg.lvs[0].id, "X4HzXT-jZRq-DfaP-0000-1111-2222-333333");
        assert!(vg.lvs[0].visible);
        assert!(!vg.lvs[1].visible);
        let lv = root
            .section("VG_XenStorage-9a3c")
            .and_then(|v| v.section("logical_volumes"))
            .and_then(|l| l.section("VHD-0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"))
            .unwrap();
        assert_eq!(
            lv.get("tags"),
            Some(&Value::Array(vec![Value::Str("a\"quoted\\tag".into())]))
        );
        assert_eq!(by_name(&vg).len(), 2);
    }

    #[test]
    fn refuses_what_is_not_vg_metadata() {
        assert!(volume_group(&parse("version = 1\nvg { id = \"x\" seqno = 1 }").unwrap()).is_err());
        let two = "contents = \"Text Format Volume Group\"\nversion = 1\na { id = \"x\" seqno = 1 }\nb { id = \"y\" seqno = 1 }";
        assert!(volume_group(&parse(two).unwrap()).is_err());
        let no_seqno = "contents = \"Text Format Volume Group\"\nversion = 1\na { id = \"x\" }";
        assert!(volume_group(&parse(no_seqno).unwrap()).is_err());
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
            let e = parse(bad).unwrap_err();
            assert!(e.starts_with("metadata text, line "), "{bad:?}: {e}");
        }
        assert_eq!(
            parse("a = -5\nb = 1.5\n").unwrap().0,
            vec![
                ("a".into(), Value::Int(-5)),
                ("b".into(), Value::Float(1.5))
            ]
        );
    }
}
