//! GSM 03.38 (3GPP TS 23.038) default alphabet with its extension table, unpacked: one septet per
//! octet, as SMPP carries it with `data_coding` 0.

/// The default alphabet, indexed by septet.
const BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1b}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The escape septet that announces a character of the extension table.
const ESCAPE: u8 = 0x1B;

/// The extension table: (septet after ESC, character).
const EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0c}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// A character that the GSM 03.38 alphabet cannot carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("character {character:?} at position {position} is not in the GSM 03.38 alphabet")]
pub struct Unencodable {
    pub character: char,
    pub position: usize,
}

/// Septet of each Latin-1 code point in the basic table (0xFF: not there), built at compile
/// time so the encoder does not scan the table for every character.
const LATIN1_TO_SEPTET: [u8; 256] = {
    let mut table = [0xFF; 256];
    let mut septet = 0;
    while septet < 128 {
        let code = BASIC[septet] as u32;
        if code < 256 && septet != ESCAPE as usize {
            table[code as usize] = septet as u8;
        }
        septet += 1;
    }
    table
};

fn septets_of(character: char) -> Option<(Option<u8>, u8)> {
    let code = u32::from(character);
    if code < 256 {
        let septet = LATIN1_TO_SEPTET[code as usize];
        if septet != 0xFF {
            return Some((None, septet));
        }
    } else if let Some(index) = BASIC.iter().position(|&c| c == character) {
        // Greek capitals: outside Latin-1, few enough to scan for.
        return Some((None, index as u8));
    }
    EXTENSION
        .iter()
        .find(|&&(_, c)| c == character)
        .map(|&(septet, _)| (Some(ESCAPE), septet))
}

/// Encodes `text` as unpacked septets; an extension character takes two (ESC + septet).
pub fn encode(text: &str) -> Result<Vec<u8>, Unencodable> {
    let mut out = Vec::with_capacity(text.len());
    for (position, character) in text.chars().enumerate() {
        let (escape, septet) = septets_of(character).ok_or(Unencodable {
            character,
            position,
        })?;
        out.extend(escape);
        out.push(septet);
    }
    Ok(out)
}

/// Septets `character` takes (2 for an extension character), or None outside the alphabet.
pub fn septets(character: char) -> Option<usize> {
    septets_of(character).map(|(escape, _)| 1 + usize::from(escape.is_some()))
}

/// Whether every character of `text` is in the alphabet.
pub fn is_encodable(text: &str) -> bool {
    text.chars().all(|c| septets_of(c).is_some())
}

/// Decodes unpacked septets. An escape followed by a septet the extension table lacks shows the
/// basic character, as TS 23.038 asks of a receiver; the top bit of each octet is ignored.
pub fn decode(septets: &[u8]) -> String {
    let mut out = String::with_capacity(septets.len());
    let mut bytes = septets.iter().map(|b| b & 0x7F);
    while let Some(septet) = bytes.next() {
        if septet == ESCAPE {
            let Some(next) = bytes.next() else { break };
            match EXTENSION.iter().find(|&&(s, _)| s == next) {
                Some(&(_, character)) => out.push(character),
                None => out.push(BASIC[usize::from(next)]),
            }
        } else {
            out.push(BASIC[usize::from(septet)]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_digits_and_letters_map_to_themselves() {
        let text = "Your verification code is 012345.";
        assert_eq!(encode(text).expect("plain ASCII is GSM"), text.as_bytes());
    }

    #[test]
    fn extension_characters_take_two_septets_and_round_trip() {
        let text = "€5 {x} [y] ~|\\^ @£$¥ Ωß";
        let septets = encode(text).expect("all of these are GSM");
        assert_eq!(&septets[..2], &[0x1B, 0x65]);
        assert_eq!(septets.len(), text.chars().count() + 9);
        assert_eq!(decode(&septets), text);
    }

    #[test]
    fn every_basic_septet_round_trips_except_escape() {
        for septet in (0u8..128).filter(|&s| s != ESCAPE) {
            let text = decode(&[septet]);
            assert_eq!(
                encode(&text).expect("decoded text re-encodes"),
                vec![septet]
            );
        }
    }

    #[test]
    fn characters_outside_the_alphabet_are_reported_with_their_position() {
        assert_eq!(
            encode("code: 1😀"),
            Err(Unencodable {
                character: '😀',
                position: 7
            })
        );
        assert!(!is_encodable("Привет"));
        assert!(is_encodable("Hallo Übersee"));
    }
}
