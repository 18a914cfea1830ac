//! Concatenated messages: a segment's place from its UDH (8- or 16-bit reference) or sar_* TLVs,
//! and reassembly of the parts into one message.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use rusmpp::tlvs::{Tlv, TlvValue};
use serde::Serialize;

/// esm_class bit 6: the short message starts with a user data header.
pub const UDHI: u8 = 0x40;

/// Where one segment belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Segment {
    pub reference: u16,
    pub total: u8,
    pub seq: u8,
}

/// Splits a short message into (segment, user data) by its UDH; `None` without a UDH. A UDH
/// with no concatenation element (e.g. port addressing only) is stripped and the text kept.
pub fn split_udh(esm_class: u8, body: &[u8]) -> Option<(Option<Segment>, &[u8])> {
    if esm_class & UDHI == 0 {
        return None;
    }
    let udhl = usize::from(*body.first()?);
    let header = body.get(1..1 + udhl)?;
    let data = &body[1 + udhl..];
    let mut segment = None;
    let mut rest = header;
    while let [id, len, tail @ ..] = rest {
        let len = usize::from(*len);
        let Some(value) = tail.get(..len) else { break };
        segment = match (id, value) {
            (0x00, [reference, total, seq]) => Some(Segment {
                reference: u16::from(*reference),
                total: *total,
                seq: *seq,
            }),
            (0x08, [high, low, total, seq]) => Some(Segment {
                reference: u16::from_be_bytes([*high, *low]),
                total: *total,
                seq: *seq,
            }),
            _ => segment,
        };
        rest = &tail[len..];
    }
    Some((segment.filter(valid), data))
}

/// The segment the sar_* TLVs describe, if all three are present.
pub fn from_sar(tlvs: &[Tlv]) -> Option<Segment> {
    let (mut reference, mut total, mut seq) = (None, None, None);
    for tlv in tlvs {
        match tlv.value() {
            Some(TlvValue::SarMsgRefNum(value)) => reference = Some(*value),
            Some(TlvValue::SarTotalSegments(value)) => total = Some(*value),
            Some(TlvValue::SarSegmentSeqnum(value)) => seq = Some(*value),
            _ => {}
        }
    }
    Some(Segment {
        reference: reference?,
        total: total?,
        seq: seq?,
    })
    .filter(valid)
}

fn valid(segment: &Segment) -> bool {
    segment.total >= 1 && (1..=segment.total).contains(&segment.seq)
}

/// Who sent a concatenated message to whom, under which reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupKey {
    pub account: String,
    pub from: String,
    pub to: String,
    pub reference: u16,
    pub total: u8,
}

struct Group {
    parts: BTreeMap<u8, (String, Vec<u8>)>,
    started: Instant,
    received: SystemTime,
    data_coding: u8,
}

/// A concatenated message still missing parts, as the tester API lists it.
#[derive(Debug, Clone)]
pub struct Incomplete {
    pub key: GroupKey,
    pub data_coding: u8,
    /// When its first part arrived.
    pub received: SystemTime,
    /// The parts it has, in order.
    pub parts: Vec<Part>,
}

/// Parts waiting for their siblings. Bounded: the oldest group is dropped past `capacity`, and
/// groups older than `max_age` are forgotten.
pub struct Reassembly {
    groups: Mutex<HashMap<GroupKey, Group>>,
    capacity: usize,
    max_age: Duration,
}

/// One part of a complete message: (seq, message id, user data). The whole message is decoded
/// from the joined user data, so a surrogate pair or escape split across parts survives.
pub type Part = (u8, String, Vec<u8>);

impl Reassembly {
    pub fn new(capacity: usize, max_age: Duration) -> Self {
        Self {
            groups: Mutex::new(HashMap::new()),
            capacity,
            max_age,
        }
    }

    /// Adds a part; when it completes its group, returns every part in order.
    pub fn add(
        &self,
        key: GroupKey,
        data_coding: u8,
        seq: u8,
        id: String,
        data: Vec<u8>,
    ) -> Option<Vec<Part>> {
        let now = Instant::now();
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        if groups.len() >= self.capacity && !groups.contains_key(&key) {
            groups.retain(|_, group| now.duration_since(group.started) < self.max_age);
            if groups.len() >= self.capacity {
                let oldest = groups
                    .iter()
                    .min_by_key(|(_, g)| g.started)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    groups.remove(&oldest);
                }
            }
        }
        let total = key.total;
        let group = groups.entry(key.clone()).or_insert_with(|| Group {
            parts: BTreeMap::new(),
            started: now,
            received: SystemTime::now(),
            data_coding,
        });
        group.parts.insert(seq, (id, data));
        if group.parts.len() < usize::from(total) {
            return None;
        }
        let group = groups.remove(&key)?;
        Some(
            group
                .parts
                .into_iter()
                .map(|(seq, (id, data))| (seq, id, data))
                .collect(),
        )
    }

    /// Messages still missing parts (and not yet too old to complete), oldest first.
    pub fn incomplete(&self) -> Vec<Incomplete> {
        let now = Instant::now();
        let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let mut incomplete: Vec<Incomplete> = groups
            .iter()
            .filter(|(_, group)| now.duration_since(group.started) < self.max_age)
            .map(|(key, group)| Incomplete {
                key: key.clone(),
                data_coding: group.data_coding,
                received: group.received,
                parts: group
                    .parts
                    .iter()
                    .map(|(seq, (id, data))| (*seq, id.clone(), data.clone()))
                    .collect(),
            })
            .collect();
        incomplete.sort_by_key(|group| group.received);
        incomplete
    }

    pub fn pending(&self) -> usize {
        self.groups.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_8_and_16_bit_references() {
        let body = [0x05, 0x00, 0x03, 0x2A, 0x02, 0x01, b'h', b'i'];
        assert_eq!(
            split_udh(UDHI, &body),
            Some((
                Some(Segment {
                    reference: 42,
                    total: 2,
                    seq: 1
                }),
                &b"hi"[..]
            ))
        );
        let body = [0x06, 0x08, 0x04, 0x01, 0x02, 0x03, 0x03, b'x'];
        assert_eq!(
            split_udh(UDHI, &body),
            Some((
                Some(Segment {
                    reference: 258,
                    total: 3,
                    seq: 3
                }),
                &b"x"[..]
            ))
        );
        assert_eq!(split_udh(0, &body), None, "no UDHI, no header");
        // Port addressing only: stripped, not a segment.
        let body = [0x06, 0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0, b'y'];
        assert_eq!(split_udh(UDHI, &body), Some((None, &b"y"[..])));
        // Nonsense is not a segment and does not panic.
        assert_eq!(split_udh(UDHI, &[0x09, 0x00]), None);
        assert_eq!(
            split_udh(UDHI, &[0x05, 0x00, 0x03, 0x01, 0x02, 0x03]),
            Some((None, &b""[..])),
            "seq beyond total"
        );
    }

    fn key(reference: u16) -> GroupKey {
        GroupKey {
            account: "a".into(),
            from: "F".into(),
            to: "+1".into(),
            reference,
            total: 3,
        }
    }

    #[test]
    fn parts_in_any_order_complete_once() {
        let reassembly = Reassembly::new(10, Duration::from_secs(60));
        assert!(
            reassembly
                .add(key(1), 0, 3, "c".into(), b"!".to_vec())
                .is_none()
        );
        assert!(
            reassembly
                .add(key(1), 0, 1, "a".into(), b"hel".to_vec())
                .is_none()
        );
        assert!(
            reassembly
                .add(key(2), 0, 1, "x".into(), b"other".to_vec())
                .is_none()
        );
        let parts = reassembly
            .add(key(1), 0, 2, "b".into(), b"lo".to_vec())
            .expect("complete");
        let text: Vec<u8> = parts
            .iter()
            .flat_map(|(_, _, d)| d.iter().copied())
            .collect();
        assert_eq!(text, b"hello!");
        assert_eq!(
            parts.iter().map(|(s, _, _)| *s).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(reassembly.pending(), 1);
    }

    #[test]
    fn the_oldest_group_goes_when_full() {
        let reassembly = Reassembly::new(2, Duration::from_secs(60));
        reassembly.add(key(1), 0, 1, "a".into(), b"x".to_vec());
        reassembly.add(key(2), 0, 1, "b".into(), b"x".to_vec());
        reassembly.add(key(3), 0, 1, "c".into(), b"x".to_vec());
        assert_eq!(reassembly.pending(), 2);
        reassembly.add(key(1), 0, 2, "d".into(), b"x".to_vec());
        assert!(
            reassembly
                .add(key(1), 0, 3, "e".into(), b"x".to_vec())
                .is_none(),
            "group 1 was evicted"
        );
    }
}
