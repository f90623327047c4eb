//! An uploaded file checked before it is kept: not empty, within the size limit, a declared
//! type the server takes, and first bytes that agree with it (the `infer` crate reads the
//! magic numbers) — an HTML page sent as `image/png` is refused, and so is one sent as text.

/// Why an upload is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachmentError {
    #[error("the upload is empty")]
    Empty,
    #[error("the upload is larger than attachments.max_bytes ({limit} bytes)")]
    TooLarge { limit: usize },
    #[error("the upload needs a Content-Type (one of {allowed})")]
    NoType { allowed: String },
    #[error("content type {declared:?} is not taken here (one of {allowed})")]
    NotAllowed { declared: String, allowed: String },
    #[error("the body is not {declared}: its first bytes say {found}")]
    Mismatch { declared: String, found: String },
}

/// What an upload's first bytes say it is (`text/plain` for UTF-8 text that is no markup).
fn sniffed(body: &[u8]) -> String {
    if let Some(kind) = infer::get(body) {
        return kind.mime_type().to_string();
    }
    match std::str::from_utf8(body) {
        Ok(text) if !text.contains('\0') => {
            let start: String = text
                .trim_start()
                .chars()
                .take(16)
                .collect::<String>()
                .to_ascii_lowercase();
            let markup = [
                "<!doctype",
                "<html",
                "<head",
                "<body",
                "<script",
                "<svg",
                "<?xml",
                "<iframe",
            ];
            if markup.iter().any(|m| start.starts_with(m)) {
                "text/html".into()
            } else {
                "text/plain".into()
            }
        }
        _ => "application/octet-stream".into(),
    }
}

/// The declared type's essence (`image/png`) once the body is found to be one.
pub fn check_attachment(
    declared: Option<&str>,
    body: &[u8],
    allowed: &[String],
    max_bytes: usize,
) -> Result<String, AttachmentError> {
    if body.len() > max_bytes {
        return Err(AttachmentError::TooLarge { limit: max_bytes });
    }
    if body.is_empty() {
        return Err(AttachmentError::Empty);
    }
    let allowed_text = allowed.join(", ");
    let declared = declared
        .map(|d| {
            d.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|d| !d.is_empty())
        .ok_or_else(|| AttachmentError::NoType {
            allowed: allowed_text.clone(),
        })?;
    if !allowed.iter().any(|a| a.eq_ignore_ascii_case(&declared)) {
        return Err(AttachmentError::NotAllowed {
            declared,
            allowed: allowed_text,
        });
    }
    let found = sniffed(body);
    if found != declared {
        return Err(AttachmentError::Mismatch { declared, found });
    }
    Ok(declared)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0";

    fn allowed() -> Vec<String> {
        crate::config::AttachmentsConfig::default().allowed_types
    }

    #[test]
    fn declared_types_must_match_the_first_bytes() {
        assert_eq!(
            check_attachment(Some("image/png"), PNG, &allowed(), 100).unwrap(),
            "image/png"
        );
        assert_eq!(
            check_attachment(Some("IMAGE/JPEG; x=1"), JPEG, &allowed(), 100).unwrap(),
            "image/jpeg"
        );
        let html = b"  <!DOCTYPE html><script>alert(1)</script>";
        for declared in ["image/png", "text/plain"] {
            assert!(matches!(
                check_attachment(Some(declared), html, &allowed(), 100),
                Err(AttachmentError::Mismatch { .. })
            ));
        }
        assert!(matches!(
            check_attachment(Some("image/png"), JPEG, &allowed(), 100),
            Err(AttachmentError::Mismatch { .. })
        ));
        assert_eq!(
            check_attachment(Some("text/plain"), b"disk full\n", &allowed(), 100).unwrap(),
            "text/plain"
        );
        assert!(matches!(
            check_attachment(Some("text/plain"), b"a\0b", &allowed(), 100),
            Err(AttachmentError::Mismatch { .. })
        ));
    }

    #[test]
    fn types_sizes_and_emptiness_are_named() {
        assert!(matches!(
            check_attachment(Some("text/html"), b"<p>", &allowed(), 100),
            Err(AttachmentError::NotAllowed { .. })
        ));
        assert!(matches!(
            check_attachment(None, PNG, &allowed(), 100),
            Err(AttachmentError::NoType { .. })
        ));
        assert_eq!(
            check_attachment(Some("image/png"), PNG, &allowed(), 4),
            Err(AttachmentError::TooLarge { limit: 4 })
        );
        assert_eq!(
            check_attachment(Some("image/png"), b"", &allowed(), 4),
            Err(AttachmentError::Empty)
        );
    }
}
