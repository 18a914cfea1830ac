//! Finds the one-time code in a message text, as a phone's autofill would.

/// The first run of 4 to 10 digits that stands alone (no digit directly before or after).
pub fn find_code(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        if bytes[start].is_ascii_digit() {
            let end = bytes[start..]
                .iter()
                .position(|b| !b.is_ascii_digit())
                .map_or(bytes.len(), |offset| start + offset);
            if (4..=10).contains(&(end - start)) {
                return Some(text[start..end].to_owned());
            }
            start = end;
        } else {
            start += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_code_not_the_minutes() {
        assert_eq!(
            find_code("Your verification code is 012345. It expires in 5 minutes.").as_deref(),
            Some("012345")
        );
        assert_eq!(
            find_code("G-482913 is your code").as_deref(),
            Some("482913")
        );
        assert_eq!(find_code("call 12 or 123").as_deref(), None);
        assert_eq!(
            find_code("ref 12345678901234, code 4321").as_deref(),
            Some("4321")
        );
    }
}
