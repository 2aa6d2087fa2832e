//! Small text helpers shared by messages that must stay bounded.

/// At most `max` characters of `text`, with `…` when something was cut. Cuts on a
/// character boundary, never inside a UTF-8 sequence.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_character_boundaries() {
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hi", 2), "hi");
        assert_eq!(truncate("", 0), "");
    }
}
