//! Small text helpers shared by messages that must stay bounded.

/// At most `max` characters of `text`, with `…` when something was cut. Cuts on a
/// character boundary, never inside a UTF-8 sequence.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// `url` with any `user:password@` taken out, for messages: a server URL may carry
/// credentials (the routes allow it), and a message must never show them.
pub fn without_userinfo(url: &str) -> std::borrow::Cow<'_, str> {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[authority_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| authority_start + i);
    match url[authority_start..authority_end].rfind('@') {
        Some(at) => format!(
            "{}{}",
            &url[..authority_start],
            &url[authority_start + at + 1..]
        )
        .into(),
        None => url.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_taken_out_of_urls() {
        assert_eq!(
            without_userinfo("https://ci:tok@jenkins/x"),
            "https://jenkins/x"
        );
        assert_eq!(without_userinfo("ftp://ci:t@k@jenkins"), "ftp://jenkins");
        assert_eq!(without_userinfo("ci:tok@jenkins"), "jenkins");
        assert_eq!(
            without_userinfo("https://jenkins/a@b"),
            "https://jenkins/a@b"
        );
        assert_eq!(
            without_userinfo("https://jenkins?x=a@b"),
            "https://jenkins?x=a@b"
        );
        assert_eq!(without_userinfo(""), "");
    }

    #[test]
    fn cuts_on_character_boundaries() {
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hi", 2), "hi");
        assert_eq!(truncate("", 0), "");
    }
}
