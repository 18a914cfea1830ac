//! The SMS text around a code: a default template and per-locale ones (`{code}`, `{minutes}`,
//! `{app}`), plus the optional Android SMS Retriever hash and WebOTP origin-bound line. Every
//! text is checked at start-up to fit `max_parts` SMS (one by default) in the coding it needs.

use std::collections::{BTreeMap, HashMap};

use smpp_wire::segment::{self, Coding};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Code,
    Minutes,
    App,
}

/// One parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// Why a template cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("the template must contain {{code}}")]
    NoCode,
    #[error("unknown placeholder {{{0}}}; use {{code}}, {{minutes}} and {{app}}")]
    UnknownPlaceholder(String),
    #[error("unclosed '{{' in the template")]
    Unclosed,
    #[error(
        "the message would take {units} {unit} in {coding:?}; one SMS holds {limit} (raise otp.max_parts to send it in parts)"
    )]
    TooLong {
        units: usize,
        unit: &'static str,
        coding: Coding,
        limit: usize,
    },
    #[error("the message would take {parts} SMS parts in {coding:?}; otp.max_parts allows {max}")]
    TooManyParts {
        parts: usize,
        coding: Coding,
        max: u8,
    },
    #[error("android_app_hash must be the 11-character hash the SMS Retriever API gives your app")]
    BadAppHash,
    #[error("webotp_domain must be a host name like example.com")]
    BadDomain,
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
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
                "app" => Part::App,
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
        Ok(Self { parts })
    }

    fn render(&self, code: &str, minutes: u64, app: &str) -> String {
        let mut out = String::with_capacity(160);
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Code => out.push_str(code),
                Part::Minutes => out.push_str(&minutes.to_string()),
                Part::App => out.push_str(app),
            }
        }
        out
    }
}

/// What the message texts are built from (the `[otp]` settings).
#[derive(Debug, Clone, Default)]
pub struct MessageSettings {
    pub default_template: String,
    /// Locale (`nl`, `pt-BR`) -> template.
    pub templates: BTreeMap<String, String>,
    pub app_name: String,
    pub android_app_hash: Option<String>,
    pub webotp_domain: Option<String>,
    pub code_length: u8,
    pub allow_latin1: bool,
    /// SMS parts one code's text may take; 1 keeps every text in a single SMS.
    pub max_parts: u8,
}

/// Every text a code can go out in.
#[derive(Debug, Clone)]
pub struct Messages {
    default: Template,
    /// Keyed by lower-case locale with `-` (`pt-br`).
    locales: HashMap<String, Template>,
    app: String,
    android_app_hash: Option<String>,
    webotp_domain: Option<String>,
}

fn normalise_locale(locale: &str) -> String {
    locale.trim().to_ascii_lowercase().replace('_', "-")
}

/// Whether `locale` looks like a language tag (`nl`, `pt-BR`, `zh_Hant_TW`).
pub fn is_locale(locale: &str) -> bool {
    !locale.is_empty()
        && locale.len() <= 35
        && locale
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Messages {
    /// Parses every template and checks its longest rendering fits one SMS. An error names the
    /// locale (`None` for the default template).
    pub fn new(settings: &MessageSettings) -> Result<Self, (Option<String>, TemplateError)> {
        if let Some(hash) = &settings.android_app_hash {
            let ok = hash.len() == 11
                && hash
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
            if !ok {
                return Err((None, TemplateError::BadAppHash));
            }
        }
        if let Some(domain) = &settings.webotp_domain {
            let ok = !domain.is_empty()
                && domain
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            if !ok {
                return Err((None, TemplateError::BadDomain));
            }
        }
        let default = Template::parse(&settings.default_template).map_err(|e| (None, e))?;
        let mut locales = HashMap::new();
        for (locale, text) in &settings.templates {
            let template = Template::parse(text).map_err(|e| (Some(locale.clone()), e))?;
            locales.insert(normalise_locale(locale), template);
        }
        let messages = Self {
            default,
            locales,
            app: settings.app_name.clone(),
            android_app_hash: settings.android_app_hash.clone(),
            webotp_domain: settings.webotp_domain.clone(),
        };
        // The longest rendering: the longest code and a four-digit minute count.
        let code = "0".repeat(usize::from(settings.code_length));
        let mut all: Vec<(Option<String>, &Template)> = vec![(None, &messages.default)];
        all.extend(
            settings
                .templates
                .keys()
                .map(|l| (Some(l.clone()), &messages.locales[&normalise_locale(l)])),
        );
        for (locale, template) in all {
            let text = messages.finish(template, &code, 9999);
            check_fits(&text, settings.allow_latin1, settings.max_parts)
                .map_err(|e| (locale, e))?;
        }
        Ok(messages)
    }

    /// The text for `code` valid `minutes`, in `locale` when a template for it (or for its
    /// language) exists, else the default.
    pub fn text(&self, locale: Option<&str>, code: &str, minutes: u64) -> String {
        let template = locale
            .map(normalise_locale)
            .and_then(|l| {
                self.locales.get(&l).or_else(|| {
                    l.split('-')
                        .next()
                        .and_then(|language| self.locales.get(language))
                })
            })
            .unwrap_or(&self.default);
        self.finish(template, code, minutes)
    }

    /// The template's text plus the app hash line and, last (as WebOTP requires), the
    /// origin-bound line `@domain #code`.
    fn finish(&self, template: &Template, code: &str, minutes: u64) -> String {
        let mut text = template.render(code, minutes, &self.app);
        if let Some(hash) = &self.android_app_hash {
            text.push_str("\n\n");
            text.push_str(hash);
        }
        if let Some(domain) = &self.webotp_domain {
            text.push_str(&format!("\n\n@{domain} #{code}"));
        }
        text
    }
}

fn check_fits(text: &str, allow_latin1: bool, max_parts: u8) -> Result<(), TemplateError> {
    let coding = segment::choose(text, allow_latin1);
    if max_parts > 1 {
        // Counted with 8-bit UDH parts (153 septets, 67 UTF-16 units), the smallest a carrier's
        // concatenation setting gives, so the count holds for sar and payload too.
        // `choose` picked a coding that carries the text, so the only error is its length.
        let parts = match segment::count(text, coding, segment::Concatenation::Udh8) {
            Ok(parts) | Err(segment::SplitError::TooLong(parts)) => parts,
            Err(segment::SplitError::NotEncodable(_)) => usize::MAX,
        };
        if parts > usize::from(max_parts) {
            return Err(TemplateError::TooManyParts {
                parts,
                coding,
                max: max_parts,
            });
        }
        return Ok(());
    }
    let (units, unit, limit) = match coding {
        Coding::Gsm7 => (
            smpp_wire::gsm7::encode(text).map_or(usize::MAX, |s| s.len()),
            "septets",
            160,
        ),
        Coding::Latin1 => (text.chars().count(), "octets", 140),
        Coding::Ucs2 => (text.encode_utf16().count(), "UTF-16 units", 70),
    };
    if units > limit {
        return Err(TemplateError::TooLong {
            units,
            unit,
            coding,
            limit,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> MessageSettings {
        MessageSettings {
            default_template: "Your {app} code is {code}. It expires in {minutes} minutes.".into(),
            templates: [
                ("nl".to_owned(), "Je {app}-code is {code}.".to_owned()),
                ("ru".to_owned(), "Ваш код {code}".to_owned()),
            ]
            .into(),
            app_name: "Contoso".into(),
            android_app_hash: None,
            webotp_domain: None,
            code_length: 6,
            allow_latin1: false,
            max_parts: 1,
        }
    }

    #[test]
    fn locales_fall_back_to_their_language_then_the_default() {
        let messages = Messages::new(&settings()).expect("valid");
        assert_eq!(
            messages.text(None, "012345", 5),
            "Your Contoso code is 012345. It expires in 5 minutes."
        );
        assert_eq!(
            messages.text(Some("nl-BE"), "012345", 5),
            "Je Contoso-code is 012345."
        );
        assert_eq!(messages.text(Some("RU_ru"), "012345", 5), "Ваш код 012345");
        assert_eq!(
            messages.text(Some("fr"), "012345", 5),
            "Your Contoso code is 012345. It expires in 5 minutes."
        );
    }

    #[test]
    fn the_app_hash_and_the_webotp_line_come_last() {
        let mut s = settings();
        s.android_app_hash = Some("FA+9qCX9VSu".into());
        s.webotp_domain = Some("login.example.com".into());
        let messages = Messages::new(&s).expect("valid");
        assert_eq!(
            messages.text(Some("nl"), "012345", 5),
            "Je Contoso-code is 012345.\n\nFA+9qCX9VSu\n\n@login.example.com #012345"
        );
    }

    #[test]
    fn max_parts_lets_a_text_take_several_sms_and_no_more() {
        let mut s = settings();
        // 6 + 1 + 200 septets: two 153-septet parts.
        s.templates
            .insert("en".into(), format!("{{code}} {}", "a".repeat(200)));
        assert!(matches!(
            Messages::new(&s),
            Err((_, TemplateError::TooLong { units: 207, .. }))
        ));
        s.max_parts = 2;
        assert!(Messages::new(&s).is_ok());
        s.templates
            .insert("en".into(), format!("{{code}} {}", "a".repeat(300)));
        assert_eq!(
            Messages::new(&s).expect_err("three parts").1,
            TemplateError::TooManyParts {
                parts: 3,
                coding: Coding::Gsm7,
                max: 2
            }
        );
        // Past what concatenation allows, the error still says how many parts it would take.
        s.templates
            .insert("en".into(), format!("{{code}} {}", "a".repeat(153 * 299)));
        assert!(matches!(
            Messages::new(&s).expect_err("300 parts").1,
            TemplateError::TooManyParts { parts: 300, .. }
        ));
    }

    #[test]
    fn each_template_must_fit_one_sms_in_its_coding() {
        let mut s = settings();
        s.templates
            .insert("de".into(), format!("{{code}} {}", "ä".repeat(150)));
        assert!(Messages::new(&s).is_ok(), "ä is GSM: 157 septets fit");
        s.templates
            .insert("uk".into(), format!("{{code}} {}", "ї".repeat(64)));
        let (locale, err) = Messages::new(&s).expect_err("71 UTF-16 units");
        assert_eq!(locale.as_deref(), Some("uk"));
        assert_eq!(
            err,
            TemplateError::TooLong {
                units: 71,
                unit: "UTF-16 units",
                coding: Coding::Ucs2,
                limit: 70
            }
        );
    }

    #[test]
    fn malformed_templates_and_settings_are_refused() {
        assert_eq!(
            Template::parse("no placeholder"),
            Err(TemplateError::NoCode)
        );
        assert_eq!(
            Template::parse("{code} {user}"),
            Err(TemplateError::UnknownPlaceholder("user".into()))
        );
        assert_eq!(Template::parse("{code"), Err(TemplateError::Unclosed));
        let mut s = settings();
        s.android_app_hash = Some("short".into());
        assert_eq!(
            Messages::new(&s).expect_err("bad hash").1,
            TemplateError::BadAppHash
        );
        let mut s = settings();
        s.webotp_domain = Some("https://x".into());
        assert_eq!(
            Messages::new(&s).expect_err("bad domain").1,
            TemplateError::BadDomain
        );
        assert!(
            is_locale("pt-BR") && is_locale("zh_Hant_TW") && !is_locale("") && !is_locale("en US")
        );
    }
}
