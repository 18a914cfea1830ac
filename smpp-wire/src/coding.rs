//! What a `data_coding` octet says (alphabet, message class) and the text of user data under it:
//! SMPP 3.4 §5.2.19 for 0x00–0x0F, the GSM coding groups of 3GPP TS 23.038 §4 above.

use crate::gsm7;

/// The character set of the user data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alphabet {
    /// GSM 03.38 default alphabet, one septet per octet (0x00, and the GSM groups' 7-bit alphabet).
    Gsm7,
    /// IA5 / ASCII (0x01).
    Ascii,
    /// ISO-8859-1 (0x03).
    Latin1,
    /// ISO-8859-5, Cyrillic (0x06).
    Cyrillic,
    /// ISO-8859-8, Latin/Hebrew (0x07).
    Hebrew,
    /// UCS-2 / UTF-16BE (0x08, and the GSM groups' 16-bit alphabet).
    Ucs2,
    /// Octets without a character set (0x02, 0x04, the GSM groups' 8-bit data).
    Binary,
    /// A character set this crate does not decode (JIS, pictogram, KS C 5601, compressed text,
    /// reserved values): shown as UTF-8 with replacement characters.
    Other,
}

impl Alphabet {
    pub fn as_str(self) -> &'static str {
        match self {
            Alphabet::Gsm7 => "gsm7",
            Alphabet::Ascii => "ascii",
            Alphabet::Latin1 => "latin1",
            Alphabet::Cyrillic => "cyrillic",
            Alphabet::Hebrew => "hebrew",
            Alphabet::Ucs2 => "ucs2",
            Alphabet::Binary => "binary",
            Alphabet::Other => "other",
        }
    }
}

/// The GSM message class (TS 23.038 §4): class 0 is a flash message, shown and not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageClass {
    /// Class 0: flash.
    Flash,
    /// Class 1: mobile equipment specific.
    MobileEquipment,
    /// Class 2: SIM specific.
    Sim,
    /// Class 3: terminal equipment specific.
    TerminalEquipment,
}

impl MessageClass {
    fn from_bits(bits: u8) -> Self {
        match bits & 0x03 {
            0 => MessageClass::Flash,
            1 => MessageClass::MobileEquipment,
            2 => MessageClass::Sim,
            _ => MessageClass::TerminalEquipment,
        }
    }

    /// The class's number, 0 to 3.
    pub fn number(self) -> u8 {
        match self {
            MessageClass::Flash => 0,
            MessageClass::MobileEquipment => 1,
            MessageClass::Sim => 2,
            MessageClass::TerminalEquipment => 3,
        }
    }
}

/// One `data_coding` octet, read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataCoding {
    pub alphabet: Alphabet,
    /// Only the GSM coding groups carry a class.
    pub class: Option<MessageClass>,
}

impl DataCoding {
    /// Reads `data_coding` as SMPP 3.4 defines 0x00–0x0F and TS 23.038 the groups above.
    pub fn from_octet(data_coding: u8) -> Self {
        let plain = |alphabet| DataCoding {
            alphabet,
            class: None,
        };
        // TS 23.038 general data coding: bits 3-2 the alphabet, bit 4 "bits 1-0 are a class".
        let general = |octet: u8| {
            let alphabet = match (octet >> 2) & 0x03 {
                0 => Alphabet::Gsm7,
                1 => Alphabet::Binary,
                2 => Alphabet::Ucs2,
                _ => Alphabet::Other,
            };
            let class = (octet & 0x10 != 0).then(|| MessageClass::from_bits(octet));
            DataCoding { alphabet, class }
        };
        match data_coding {
            0x00 => plain(Alphabet::Gsm7),
            0x01 => plain(Alphabet::Ascii),
            0x02 | 0x04 => plain(Alphabet::Binary),
            0x03 => plain(Alphabet::Latin1),
            0x06 => plain(Alphabet::Cyrillic),
            0x07 => plain(Alphabet::Hebrew),
            0x08 => plain(Alphabet::Ucs2),
            0x05 | 0x09..=0x0F => plain(Alphabet::Other),
            // 0x10-0x1F: uncompressed, with a class; 0x40-0x5F the same, marked for deletion.
            0x10..=0x1F | 0x40..=0x5F => general(data_coding),
            // Compressed text (bit 5): not decoded.
            0x20..=0x3F | 0x60..=0x7F => DataCoding {
                class: general(data_coding).class,
                alphabet: Alphabet::Other,
            },
            // Message waiting indication groups: discard/store with the default alphabet, store
            // with UCS-2.
            0xC0..=0xDF => plain(Alphabet::Gsm7),
            0xE0..=0xEF => plain(Alphabet::Ucs2),
            // Data coding / message class: bit 2 chooses 8-bit data over the default alphabet.
            0xF0..=0xFF => DataCoding {
                alphabet: if data_coding & 0x04 != 0 {
                    Alphabet::Binary
                } else {
                    Alphabet::Gsm7
                },
                class: Some(MessageClass::from_bits(data_coding)),
            },
            // 0x80-0xBF are reserved coding groups.
            0x80..=0xBF => plain(Alphabet::Other),
        }
    }

    /// Whether a handset shows it without storing it (class 0).
    pub fn is_flash(self) -> bool {
        self.class == Some(MessageClass::Flash)
    }

    /// The text of `bytes` (user data without any UDH) in this alphabet.
    pub fn decode(self, bytes: &[u8]) -> String {
        match self.alphabet {
            Alphabet::Gsm7 => gsm7::decode(bytes),
            Alphabet::Ascii | Alphabet::Latin1 | Alphabet::Binary => {
                bytes.iter().map(|&b| char::from(b)).collect()
            }
            Alphabet::Cyrillic => bytes.iter().map(|&b| iso_8859_5(b)).collect(),
            Alphabet::Hebrew => bytes.iter().map(|&b| iso_8859_8(b)).collect(),
            // An odd trailing octet is dropped rather than guessed at.
            Alphabet::Ucs2 => {
                let units: Vec<u16> = bytes
                    .chunks_exact(2)
                    .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                    .collect();
                String::from_utf16_lossy(&units)
            }
            Alphabet::Other => String::from_utf8_lossy(bytes).into_owned(),
        }
    }
}

/// The text of `bytes` under `data_coding`.
pub fn decode(data_coding: u8, bytes: &[u8]) -> String {
    DataCoding::from_octet(data_coding).decode(bytes)
}

/// ISO-8859-5: Latin-1's lower half, then the Cyrillic block at U+0401–U+045F in the same order,
/// with three exceptions.
fn iso_8859_5(byte: u8) -> char {
    match byte {
        0x00..=0xA0 | 0xAD => char::from(byte),
        0xF0 => '\u{2116}',
        0xFD => '\u{00A7}',
        _ => char::from_u32(0x0360 + u32::from(byte)).unwrap_or(char::REPLACEMENT_CHARACTER),
    }
}

/// ISO-8859-8: Latin-1's symbols where it keeps them, Hebrew letters at 0xE0–0xFA.
fn iso_8859_8(byte: u8) -> char {
    match byte {
        0x00..=0xA0 | 0xA2..=0xA9 | 0xAB..=0xB9 | 0xBB..=0xBE => char::from(byte),
        0xAA => '\u{00D7}',
        0xBA => '\u{00F7}',
        0xDF => '\u{2017}',
        0xE0..=0xFA => {
            char::from_u32(0x05D0 + u32::from(byte - 0xE0)).unwrap_or(char::REPLACEMENT_CHARACTER)
        }
        0xFD => '\u{200E}',
        0xFE => '\u{200F}',
        _ => char::REPLACEMENT_CHARACTER,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smpp_codings_decode() {
        assert_eq!(decode(0x00, &[0x1B, 0x65, b'5']), "€5");
        assert_eq!(decode(0x01, b"abc"), "abc");
        assert_eq!(decode(0x03, &[0xE9]), "é");
        assert_eq!(decode(0x08, &[0x04, 0x1A, 0xD8, 0x3D, 0xDE, 0x00]), "К😀");
        assert_eq!(decode(0x08, &[0x00, 0x41, 0x00]), "A");
        // "Привет" in ISO-8859-5, and "№ §".
        assert_eq!(
            decode(0x06, &[0xBF, 0xE0, 0xD8, 0xD2, 0xD5, 0xE2]),
            "Привет"
        );
        assert_eq!(decode(0x06, &[0xF0, 0x20, 0xFD, 0xA1, 0xF1]), "№ §Ёё");
        // "שלום" in ISO-8859-8, and the multiplication sign.
        assert_eq!(
            decode(0x07, &[0xF9, 0xEC, 0xE5, 0xED, 0x20, 0xAA]),
            "שלום ×"
        );
        assert_eq!(decode(0x07, &[0xC0]), "\u{FFFD}");
    }

    #[test]
    fn gsm_coding_groups_give_alphabet_and_class() {
        let ucs2_flash = DataCoding::from_octet(0x18);
        assert_eq!(ucs2_flash.alphabet, Alphabet::Ucs2);
        assert!(ucs2_flash.is_flash());
        assert_eq!(ucs2_flash.decode(&[0x04, 0x1A]), "К");
        let gsm_flash = DataCoding::from_octet(0x10);
        assert_eq!(
            (gsm_flash.alphabet, gsm_flash.class),
            (Alphabet::Gsm7, Some(MessageClass::Flash))
        );
        assert_eq!(gsm_flash.decode(&[0x00]), "@");
        assert_eq!(DataCoding::from_octet(0x12).class, Some(MessageClass::Sim));
        // Bit 4 clear: bits 1-0 are no class.
        assert_eq!(DataCoding::from_octet(0x40).class, None);
        assert_eq!(
            DataCoding::from_octet(0xF0),
            DataCoding {
                alphabet: Alphabet::Gsm7,
                class: Some(MessageClass::Flash)
            }
        );
        assert_eq!(
            DataCoding::from_octet(0xF5),
            DataCoding {
                alphabet: Alphabet::Binary,
                class: Some(MessageClass::MobileEquipment)
            }
        );
        assert_eq!(
            DataCoding::from_octet(0xF3).class.map(MessageClass::number),
            Some(3)
        );
        assert_eq!(DataCoding::from_octet(0x00).class, None);
        assert_eq!(DataCoding::from_octet(0x08).class, None);
    }
}
