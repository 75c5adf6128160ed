//! Error messages that keep their causes.

/// `error`'s text followed by its causes' (`a: b: c`). A cause whose text
/// is already there is left out, since many errors (hyper's, reqwest's)
/// repeat their cause's text in their own.
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut message = String::new();
    let mut source = Some(error);
    while let Some(current) = source {
        let text = current.to_string();
        if !text.is_empty() && !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
        source = current.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|inner| inner as _)
        }
    }

    #[test]
    fn causes_follow_and_repeats_are_left_out() {
        let error = Layer(
            "upload failed",
            Some(Box::new(Layer(
                "upload failed",
                Some(Box::new(Layer("no data for 60 s", None))),
            ))),
        );

        assert_eq!(with_causes(&error), "upload failed: no data for 60 s");
    }
}
