//! Spec names for `command_status` values (`ESME_RINVPASWD`), for logs, metrics labels and APIs.

use rusmpp::CommandStatus;

/// The SMPP specification's name of a `command_status`, e.g. `ESME_ROK`, `ESME_RTHROTTLED`;
/// a value the spec does not name is written as `0x%08X`.
pub fn status_name(status: CommandStatus) -> String {
    if let CommandStatus::Other(raw) = status {
        return format!("0x{raw:08X}");
    }
    // rusmpp names the variants after the spec in camel case (`EsmeRinvpaswd`); the spec's own
    // spelling is `ESME_RINVPASWD`.
    let debug = format!("{status:?}");
    match debug.strip_prefix("Esme") {
        Some(rest) => format!("ESME_{}", rest.to_ascii_uppercase()),
        None => debug.to_ascii_uppercase(),
    }
}

/// The `command_status` a spec name or a number stands for: `ESME_RTHROTTLED`, `88`, `0x58`.
pub fn parse_status(text: &str) -> Option<CommandStatus> {
    let text = text.trim();
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        return u32::from_str_radix(hex, 16).ok().map(CommandStatus::from);
    }
    if let Ok(number) = text.parse::<u32>() {
        return Some(CommandStatus::from(number));
    }
    // Every named status lies below 0x200 (SMPP 5.0 tops out at 0x112).
    let wanted = text.to_ascii_uppercase();
    (0..0x200u32)
        .map(CommandStatus::from)
        .find(|status| !matches!(status, CommandStatus::Other(_)) && status_name(*status) == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_parse_back() {
        assert_eq!(
            parse_status("ESME_RTHROTTLED"),
            Some(CommandStatus::EsmeRthrottled)
        );
        assert_eq!(
            parse_status("esme_rinvdstadr"),
            Some(CommandStatus::EsmeRinvdstadr)
        );
        assert_eq!(parse_status("0x14"), Some(CommandStatus::EsmeRmsgqful));
        assert_eq!(parse_status("8"), Some(CommandStatus::EsmeRsyserr));
        assert_eq!(parse_status("0x400"), Some(CommandStatus::Other(0x400)));
        assert_eq!(parse_status("ESME_NOPE"), None);
    }

    #[test]
    fn names_follow_the_spec() {
        assert_eq!(status_name(CommandStatus::EsmeRok), "ESME_ROK");
        assert_eq!(status_name(CommandStatus::EsmeRinvpaswd), "ESME_RINVPASWD");
        assert_eq!(
            status_name(CommandStatus::EsmeRthrottled),
            "ESME_RTHROTTLED"
        );
        assert_eq!(status_name(CommandStatus::Other(0x0400)), "0x00000400");
    }
}
