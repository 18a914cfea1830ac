//! Spec names for `command_status` values (`ESME_RINVPASWD`), for logs, metrics labels and APIs.

use rusmpp::CommandStatus;

/// The SMPP specification's name of a `command_status`, e.g. `ESME_ROK`, `ESME_RTHROTTLED`;
/// a value the spec does not name is written as `0x%08X`.
pub fn status_name(status: CommandStatus) -> String {
    match status {
        CommandStatus::Other(raw) => return format!("0x{raw:08X}"),
        // The camel-case rule below would write `ESME_RXTAPPN`; the spec separates the letters.
        CommandStatus::EsmeRxTAppn => return "ESME_RX_T_APPN".to_owned(),
        CommandStatus::EsmeRxPAppn => return "ESME_RX_P_APPN".to_owned(),
        CommandStatus::EsmeRxRAppn => return "ESME_RX_R_APPN".to_owned(),
        _ => {}
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
    // The spelling this crate wrote before it followed the spec.
    let wanted = match wanted.as_str() {
        "ESME_RXTAPPN" => "ESME_RX_T_APPN".to_owned(),
        "ESME_RXPAPPN" => "ESME_RX_P_APPN".to_owned(),
        "ESME_RXRAPPN" => "ESME_RX_R_APPN".to_owned(),
        _ => wanted,
    };
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
        assert_eq!(status_name(CommandStatus::EsmeRxTAppn), "ESME_RX_T_APPN");
        assert_eq!(status_name(CommandStatus::EsmeRxPAppn), "ESME_RX_P_APPN");
        assert_eq!(status_name(CommandStatus::EsmeRxRAppn), "ESME_RX_R_APPN");
    }

    #[test]
    fn appn_statuses_parse_in_both_spellings() {
        for (spec, old, status) in [
            ("ESME_RX_T_APPN", "ESME_RXTAPPN", CommandStatus::EsmeRxTAppn),
            ("ESME_RX_P_APPN", "ESME_RXPAPPN", CommandStatus::EsmeRxPAppn),
            ("ESME_RX_R_APPN", "ESME_RXRAPPN", CommandStatus::EsmeRxRAppn),
        ] {
            assert_eq!(parse_status(spec), Some(status));
            assert_eq!(parse_status(&spec.to_ascii_lowercase()), Some(status));
            assert_eq!(parse_status(old), Some(status));
        }
        assert_eq!(parse_status("0x64"), Some(CommandStatus::EsmeRxTAppn));
    }

    #[test]
    fn every_named_status_parses_back_from_its_name() {
        for raw in 0..0x200u32 {
            let status = CommandStatus::from(raw);
            if !matches!(status, CommandStatus::Other(_)) {
                assert_eq!(parse_status(&status_name(status)), Some(status), "{raw:#x}");
            }
        }
    }
}
