//! What the directory accepts as names, principal names and tenant ids (for every backend).

use crate::directory::{DirectoryError, Result};

pub fn check_name(field: &str, value: &str) -> Result<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.len() > 256 || trimmed.chars().any(char::is_control) {
        return Err(DirectoryError::Invalid(format!(
            "{field} must be 1 to 256 printable characters"
        )));
    }
    Ok(trimmed.to_owned())
}

pub fn check_upn(value: &str) -> Result<String> {
    let upn = check_name("userPrincipalName", value)?;
    match upn.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !upn.contains(char::is_whitespace) =>
        {
            Ok(upn)
        }
        _ => Err(DirectoryError::Invalid(
            "userPrincipalName must look like alias@domain".to_owned(),
        )),
    }
}

pub fn check_tenant_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(DirectoryError::Invalid(
            "a tenant id is 1 to 64 letters, digits, '-', '_' or '.'".to_owned(),
        ));
    }
    Ok(())
}
