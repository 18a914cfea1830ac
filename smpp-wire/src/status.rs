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

#[cfg(test)]
mod tests {
    use super::*;

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
