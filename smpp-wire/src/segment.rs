//! Text to SMS segments: choose the data_coding that carries the text, then split it into parts
//! that carriers accept, never inside a GSM escape sequence or a UTF-16 surrogate pair.

use crate::gsm7;

/// How the text is encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// GSM 03.38 default alphabet, one septet per octet (data_coding 0).
    Gsm7,
    /// ISO-8859-1 (data_coding 3), only where a carrier asks for it.
    Latin1,
    /// UCS-2 / UTF-16BE (data_coding 8); characters outside the BMP as surrogate pairs.
    Ucs2,
}

impl Coding {
    pub fn data_coding(self) -> u8 {
        match self {
            Coding::Gsm7 => 0,
            Coding::Latin1 => 3,
            Coding::Ucs2 => 8,
        }
    }

    /// (units in one unsegmented message, units per part of a concatenated one). Units are
    /// septets, octets and UTF-16 code units respectively.
    fn limits(self) -> (usize, usize) {
        match self {
            Coding::Gsm7 => (160, 153),
            Coding::Latin1 => (140, 134),
            Coding::Ucs2 => (70, 67),
        }
    }
}

/// GSM 03.38 when it carries the text, then Latin-1 if allowed and it carries it, else UCS-2.
pub fn choose(text: &str, allow_latin1: bool) -> Coding {
    if gsm7::is_encodable(text) {
        Coding::Gsm7
    } else if allow_latin1 && text.chars().all(|c| u32::from(c) <= 0xFF) {
        Coding::Latin1
    } else {
        Coding::Ucs2
    }
}

/// How the parts of a long message say they belong together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concatenation {
    /// A user data header with an 8-bit reference (esm_class UDHI).
    Udh8,
    /// sar_msg_ref_num / sar_total_segments / sar_segment_seqnum TLVs.
    Sar,
    /// No split: the whole text in one message_payload TLV.
    Payload,
}

/// One submit's worth of user data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// What goes in short_message (or message_payload), UDH included when `udhi`.
    pub data: Vec<u8>,
    pub udhi: bool,
    /// (reference, total, seq) for sar_* TLVs.
    pub sar: Option<(u16, u8, u8)>,
}

/// Why a text cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("the text needs {0} parts; SMS concatenation allows 255")]
    TooLong(usize),
    #[error("the text cannot be encoded as {0:?}")]
    NotEncodable(Coding),
}

/// Each character's encoded units, kept together so no split falls inside one.
fn characters(text: &str, coding: Coding) -> Result<Vec<Vec<u8>>, SplitError> {
    text.chars()
        .map(|c| match coding {
            Coding::Gsm7 => gsm7::encode(c.encode_utf8(&mut [0; 4]))
                .map_err(|_| SplitError::NotEncodable(coding)),
            Coding::Latin1 => u8::try_from(u32::from(c))
                .map(|b| vec![b])
                .map_err(|_| SplitError::NotEncodable(coding)),
            Coding::Ucs2 => Ok(c
                .encode_utf16(&mut [0; 2])
                .iter()
                .flat_map(|u| u.to_be_bytes())
                .collect()),
        })
        .collect()
}

/// The whole text encoded, when it fits one unsegmented message (or goes as one payload).
fn encode_whole(
    text: &str,
    coding: Coding,
    single: usize,
    concatenation: Concatenation,
) -> Option<Vec<u8>> {
    let (data, units) = match coding {
        Coding::Gsm7 => {
            let septets = gsm7::encode(text).ok()?;
            let units = septets.len();
            (septets, units)
        }
        Coding::Latin1 => {
            let octets: Vec<u8> = text
                .chars()
                .map(|c| u8::try_from(u32::from(c)).ok())
                .collect::<Option<_>>()?;
            let units = octets.len();
            (octets, units)
        }
        Coding::Ucs2 => {
            let utf16: Vec<u16> = text.encode_utf16().collect();
            let units = utf16.len();
            (utf16.iter().flat_map(|u| u.to_be_bytes()).collect(), units)
        }
    };
    (units <= single || concatenation == Concatenation::Payload).then_some(data)
}

/// Units a character takes against the coding's limits.
fn units(coding: Coding, encoded: &[u8]) -> usize {
    match coding {
        Coding::Ucs2 => encoded.len() / 2,
        Coding::Gsm7 | Coding::Latin1 => encoded.len(),
    }
}

/// Units one character takes in `coding` (septets, octets or UTF-16 code units).
fn unit_count(character: char, coding: Coding) -> Result<usize, SplitError> {
    match coding {
        Coding::Gsm7 => gsm7::septets(character).ok_or(SplitError::NotEncodable(coding)),
        Coding::Latin1 if u32::from(character) <= 0xFF => Ok(1),
        Coding::Latin1 => Err(SplitError::NotEncodable(coding)),
        Coding::Ucs2 => Ok(character.len_utf16()),
    }
}

/// The part each character goes to, given the units each takes: parts fill in order up to
/// `per_part` units, and a character (an escape and its septet, a surrogate pair) never
/// straddles two. `split` and `count` both cut by it.
fn part_of_each(
    sizes: impl Iterator<Item = usize>,
    per_part: usize,
) -> impl Iterator<Item = usize> {
    let (mut part, mut used) = (0, 0);
    sizes.map(move |size| {
        if used + size > per_part {
            part += 1;
            used = 0;
        }
        used += size;
        part
    })
}

/// How many parts `split` makes of `text`, without building them; the same errors, except that
/// a text too long for concatenation reports its real part count.
pub fn count(
    text: &str,
    coding: Coding,
    concatenation: Concatenation,
) -> Result<usize, SplitError> {
    let (single, per_part) = coding.limits();
    let sizes = text
        .chars()
        .map(|character| unit_count(character, coding))
        .collect::<Result<Vec<usize>, _>>()?;
    if sizes.iter().sum::<usize>() <= single || concatenation == Concatenation::Payload {
        return Ok(1);
    }
    let parts = part_of_each(sizes.into_iter(), per_part)
        .last()
        .map_or(1, |last| last + 1);
    if parts > usize::from(u8::MAX) {
        return Err(SplitError::TooLong(parts));
    }
    Ok(parts)
}

/// Encodes `text` in `coding` and splits it as `concatenation` says. `reference` ties the parts
/// of one message together (Udh8 uses its low byte).
pub fn split(
    text: &str,
    coding: Coding,
    concatenation: Concatenation,
    reference: u16,
) -> Result<Vec<Part>, SplitError> {
    let (single, per_part) = coding.limits();
    // The common case (an OTP): the whole text in one part, encoded without per-character
    // buffers.
    if let Some(data) = encode_whole(text, coding, single, concatenation) {
        return Ok(vec![Part {
            data,
            udhi: false,
            sar: None,
        }]);
    }
    let encoded = characters(text, coding)?;
    let total_units: usize = encoded.iter().map(|c| units(coding, c)).sum();
    if total_units <= single || concatenation == Concatenation::Payload {
        return Ok(vec![Part {
            data: encoded.concat(),
            udhi: false,
            sar: None,
        }]);
    }
    let mut chunks: Vec<Vec<u8>> = vec![Vec::new()];
    let sizes = encoded.iter().map(|character| units(coding, character));
    for (character, part) in encoded.iter().zip(part_of_each(sizes, per_part)) {
        // Parts are numbered from 0 up by one at a time: `part` is the last chunk or the next.
        if part == chunks.len() {
            chunks.push(Vec::new());
        }
        chunks[part].extend_from_slice(character);
    }
    let total = u8::try_from(chunks.len()).map_err(|_| SplitError::TooLong(chunks.len()))?;
    Ok(chunks
        .into_iter()
        .zip(1u8..)
        .map(|(chunk, seq)| match concatenation {
            Concatenation::Udh8 => {
                let mut data = vec![0x05, 0x00, 0x03, reference as u8, total, seq];
                data.extend(chunk);
                Part {
                    data,
                    udhi: true,
                    sar: None,
                }
            }
            Concatenation::Sar | Concatenation::Payload => Part {
                data: chunk,
                udhi: false,
                sar: Some((reference, total, seq)),
            },
        })
        .collect())
}

/// The text of user data in `coding` (the inverse of encoding, without any UDH).
pub fn decode(coding: Coding, data: &[u8]) -> String {
    match coding {
        Coding::Gsm7 => gsm7::decode(data),
        Coding::Latin1 => data.iter().map(|&b| char::from(b)).collect(),
        Coding::Ucs2 => {
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
    }
}

/// The user data of `part` without its UDH.
pub fn user_data(part: &Part) -> &[u8] {
    if part.udhi {
        let udhl = usize::from(part.data.first().copied().unwrap_or(0));
        part.data.get(1 + udhl..).unwrap_or_default()
    } else {
        &part.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn joined(parts: &[Part], coding: Coding) -> String {
        let data: Vec<u8> = parts
            .iter()
            .flat_map(|p| user_data(p).iter().copied())
            .collect();
        decode(coding, &data)
    }

    #[test]
    fn the_coding_is_the_narrowest_that_carries_the_text() {
        assert_eq!(choose("Your code is 123456", false), Coding::Gsm7);
        assert_eq!(
            choose("Código: 123456 {ok} €", false),
            Coding::Ucs2,
            "ó is not GSM"
        );
        assert_eq!(choose("Código: 123456", true), Coding::Latin1);
        assert_eq!(choose("Ваш код 123456", true), Coding::Ucs2);
        assert_eq!(choose("Votre code é 1", false), Coding::Gsm7, "é is GSM");
    }

    #[test]
    fn limits_are_160_and_153_septets_70_and_67_units() {
        assert_eq!(
            split(&"a".repeat(160), Coding::Gsm7, Concatenation::Udh8, 1)
                .expect("ok")
                .len(),
            1
        );
        let parts = split(&"a".repeat(161), Coding::Gsm7, Concatenation::Udh8, 7).expect("ok");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].data[..6], [0x05, 0x00, 0x03, 7, 2, 1]);
        assert_eq!(user_data(&parts[0]).len(), 153);
        assert_eq!(
            split(&"я".repeat(70), Coding::Ucs2, Concatenation::Sar, 1)
                .expect("ok")
                .len(),
            1
        );
        let parts = split(&"я".repeat(71), Coding::Ucs2, Concatenation::Sar, 300).expect("ok");
        assert_eq!(
            (parts.len(), parts[0].data.len(), parts[1].sar),
            (2, 134, Some((300, 2, 2)))
        );
        let payload =
            split(&"x".repeat(1000), Coding::Gsm7, Concatenation::Payload, 1).expect("ok");
        assert_eq!((payload.len(), payload[0].data.len()), (1, 1000));
    }

    #[test]
    fn an_escape_at_the_boundary_moves_to_the_next_part() {
        // 152 plain septets then '€' (ESC + 0x65): it would straddle 153, so it starts part 2.
        let text = format!("{}€{}", "a".repeat(152), "b".repeat(20));
        let parts = split(&text, Coding::Gsm7, Concatenation::Udh8, 1).expect("ok");
        assert_eq!(user_data(&parts[0]).len(), 152);
        assert_eq!(&user_data(&parts[1])[..2], &[0x1B, 0x65]);
        assert_eq!(joined(&parts, Coding::Gsm7), text);
    }

    #[test]
    fn a_surrogate_pair_at_the_boundary_moves_to_the_next_part() {
        let text = format!("{}😀{}", "я".repeat(66), "я".repeat(10));
        let parts = split(&text, Coding::Ucs2, Concatenation::Udh8, 1).expect("ok");
        assert_eq!(user_data(&parts[0]).len(), 132);
        assert_eq!(joined(&parts, Coding::Ucs2), text);
    }

    #[test]
    fn more_than_255_parts_is_refused() {
        assert_eq!(
            split(&"a".repeat(153 * 256), Coding::Gsm7, Concatenation::Udh8, 1),
            Err(SplitError::TooLong(256))
        );
        assert_eq!(
            split("ж", Coding::Gsm7, Concatenation::Udh8, 1),
            Err(SplitError::NotEncodable(Coding::Gsm7))
        );
    }

    /// Characters of the GSM alphabet (basic and extension), ESC excluded.
    fn gsm_char() -> impl Strategy<Value = char> {
        let alphabet: Vec<char> = (0u8..128)
            .filter(|&s| s != 0x1B)
            .map(|s| gsm7::decode(&[s]).chars().next().expect("one char"))
            .chain("^{}\\[~]|€\u{0c}".chars())
            .collect();
        proptest::sample::select(alphabet)
    }

    proptest! {
        #[test]
        fn any_gsm_text_round_trips_through_its_parts(text in proptest::collection::vec(gsm_char(), 0..700).prop_map(String::from_iter)) {
            prop_assert_eq!(choose(&text, false), Coding::Gsm7);
            let parts = split(&text, Coding::Gsm7, Concatenation::Udh8, 42).expect("fits 255 parts");
            for part in &parts {
                let data = user_data(part);
                let limit = if parts.len() == 1 { 160 } else { 153 };
                prop_assert!(data.len() <= limit, "{} septets", data.len());
                prop_assert!(data.last() != Some(&0x1B), "an escape was split from its character");
            }
            prop_assert_eq!(joined(&parts, Coding::Gsm7), text);
        }

        #[test]
        fn any_unicode_text_round_trips_through_ucs2_parts(text in "\\PC{0,300}", sar in any::<bool>()) {
            let method = if sar { Concatenation::Sar } else { Concatenation::Udh8 };
            let parts = split(&text, Coding::Ucs2, method, 7).expect("fits 255 parts");
            for part in &parts {
                let data = user_data(part);
                let limit = if parts.len() == 1 { 140 } else { 134 };
                prop_assert!(data.len() <= limit, "{} octets", data.len());
                let last = data.len().checked_sub(2).map(|i| u16::from_be_bytes([data[i], data[i + 1]]));
                prop_assert!(!last.is_some_and(|u| (0xD800..0xDC00).contains(&u)), "a surrogate pair was split");
            }
            prop_assert_eq!(joined(&parts, Coding::Ucs2), text);
        }

        #[test]
        fn count_agrees_with_split(text in "[a-z0-9 {}~€|^\\[\\]\\PC]{0,400}", coding in 0..3u8, method in 0..3u8) {
            let coding = [Coding::Gsm7, Coding::Latin1, Coding::Ucs2][usize::from(coding)];
            let method = [Concatenation::Udh8, Concatenation::Sar, Concatenation::Payload][usize::from(method)];
            let counted = count(&text, coding, method);
            match split(&text, coding, method, 1) {
                Ok(parts) => prop_assert_eq!(counted.ok(), Some(parts.len())),
                Err(SplitError::TooLong(n)) => prop_assert_eq!(counted.err().map(|e| e.to_string()), Some(SplitError::TooLong(n).to_string())),
                Err(err) => prop_assert_eq!(counted.err().map(|e| e.to_string()), Some(err.to_string())),
            }
        }
    }

    #[test]
    fn count_reports_the_real_number_of_parts_past_255() {
        let text = "x".repeat(153 * 300);
        let err = count(&text, Coding::Gsm7, Concatenation::Udh8).expect_err("too long");
        assert!(matches!(err, SplitError::TooLong(300)), "{err}");
        assert_eq!(
            count(&"é".repeat(71), Coding::Ucs2, Concatenation::Sar).ok(),
            Some(2)
        );
        assert_eq!(
            count(&"{".repeat(81), Coding::Gsm7, Concatenation::Udh8).ok(),
            Some(2)
        );
        assert_eq!(
            count(&"x".repeat(1000), Coding::Gsm7, Concatenation::Payload).ok(),
            Some(1)
        );
    }
}
