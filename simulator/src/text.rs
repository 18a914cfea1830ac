//! Decodes a short message to text by its data_coding.

use smpp_wire::gsm7;

/// Text of `bytes` under `data_coding`: 0 GSM 03.38, 1 IA5 (ASCII), 3 Latin-1, 8 UCS-2 (UTF-16BE);
/// anything else is shown as UTF-8 with replacement characters.
pub fn decode(data_coding: u8, bytes: &[u8]) -> String {
    match data_coding {
        0 => gsm7::decode(bytes),
        1 | 3 => bytes.iter().map(|&b| char::from(b)).collect(),
        8 => {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
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
    }
}
