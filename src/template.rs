//! The SMS text around a code: `{code}` and `{minutes}` placeholders, checked at start-up to fit one
//! GSM 03.38 message.

use smpp_wire::gsm7;

/// Septets in one unsegmented GSM 03.38 SMS.
const SINGLE_SMS_SEPTETS: usize = 160;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Code,
    Minutes,
}

/// A parsed message template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// Why a template cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("the template must contain {{code}}")]
    NoCode,
    #[error("unknown placeholder {{{0}}}; use {{code}} and {{minutes}}")]
    UnknownPlaceholder(String),
    #[error("unclosed '{{' in the template")]
    Unclosed,
    #[error(transparent)]
    NotGsm(#[from] gsm7::Unencodable),
    #[error("the message would take {0} GSM 03.38 septets; one SMS holds {SINGLE_SMS_SEPTETS}")]
    TooLong(usize),
}

impl Template {
    /// Parses `text` and checks that it renders to one GSM SMS with a `code_length`-digit code.
    pub fn parse(text: &str, code_length: u8) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or(TemplateError::Unclosed)?;
            parts.push(match &after[..close] {
                "code" => Part::Code,
                "minutes" => Part::Minutes,
                other => return Err(TemplateError::UnknownPlaceholder(other.to_owned())),
            });
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        if !parts.contains(&Part::Code) {
            return Err(TemplateError::NoCode);
        }
        let template = Self { parts };
        // The longest rendering: the longest code and a four-digit minute count.
        let sample = template.render(&"0".repeat(usize::from(code_length)), 9999);
        let septets = gsm7::encode(&sample)?.len();
        if septets > SINGLE_SMS_SEPTETS {
            return Err(TemplateError::TooLong(septets));
        }
        Ok(template)
    }

    /// The message text for `code`, valid for `minutes`.
    pub fn render(&self, code: &str, minutes: u64) -> String {
        let mut out = String::with_capacity(SINGLE_SMS_SEPTETS);
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Code => out.push_str(code),
                Part::Minutes => out.push_str(&minutes.to_string()),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_default_text() {
        let template = Template::parse(
            "Your verification code is {code}. It expires in {minutes} minutes.",
            6,
        )
        .expect("default template is valid");
        assert_eq!(
            template.render("012345", 5),
            "Your verification code is 012345. It expires in 5 minutes."
        );
    }

    #[test]
    fn refuses_what_cannot_be_sent() {
        assert_eq!(
            Template::parse("no placeholder", 6),
            Err(TemplateError::NoCode)
        );
        assert_eq!(
            Template::parse("{code} {app}", 6),
            Err(TemplateError::UnknownPlaceholder("app".into()))
        );
        assert_eq!(Template::parse("{code", 6), Err(TemplateError::Unclosed));
        assert!(matches!(
            Template::parse("Код {code}", 6),
            Err(TemplateError::NotGsm(_))
        ));
        assert!(matches!(
            Template::parse(&format!("{{code}}{}", "x".repeat(160)), 6),
            Err(TemplateError::TooLong(166))
        ));
    }
}
