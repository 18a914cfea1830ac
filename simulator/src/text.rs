//! Decodes a short message to text by its data_coding (see [`smpp_wire::coding`]).

use smpp_wire::coding::DataCoding;

/// Text of `bytes` under `data_coding`: 0 GSM 03.38, 1 IA5 (ASCII), 3 Latin-1, 6 Cyrillic
/// (ISO-8859-5), 7 Latin/Hebrew (ISO-8859-8), 8 UCS-2 (UTF-16BE), octet codings as Latin-1, and
/// the GSM coding groups (0x10–0x1F, 0xF0–0xFF, ...) by their alphabet; anything else is shown
/// as UTF-8 with replacement characters.
pub fn decode(data_coding: u8, bytes: &[u8]) -> String {
    DataCoding::from_octet(data_coding).decode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_each_coding() {
        assert_eq!(decode(0, &[0x1B, 0x65, b'5']), "€5");
        assert_eq!(decode(3, &[0xE9]), "é");
        assert_eq!(decode(8, &[0x04, 0x1A, 0xD8, 0x3D, 0xDE, 0x00]), "К😀");
        // An odd trailing byte in UCS-2 is dropped rather than guessed at.
        assert_eq!(decode(8, &[0x00, 0x41, 0x00]), "A");
        assert_eq!(decode(6, &[0xBF, 0xE0, 0xD8, 0xD2, 0xD5, 0xE2]), "Привет");
        assert_eq!(decode(7, &[0xF9, 0xEC, 0xE5, 0xED]), "שלום");
        // UCS-2 flash (class 0), GSM 7-bit class 1 in the F0 group.
        assert_eq!(decode(0x18, &[0x04, 0x1A]), "К");
        assert_eq!(decode(0xF1, &[0x00, 0x11]), "@_");
        assert_eq!(decode(0x11, &[0x02]), "$");
    }
}
