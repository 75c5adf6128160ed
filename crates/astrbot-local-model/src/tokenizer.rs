//! A small byte-level BPE tokenizer (the GPT-2 scheme) built from the vocabulary
//! and merges stored in a GGUF file's metadata.
//!
//! SmolLM2 ships no `tokenizer.json` inside the GGUF, and the heavy `tokenizers`
//! crate would be overkill for one model, so this reimplements the three parts
//! that matter: the byte ↔ unicode map, the pre-tokenizer split (digits one by
//! one, then the GPT-2 pattern) and rank-ordered merges.

use std::collections::HashMap;

use anyhow::{bail, Context};
use candle_core::quantized::gguf_file::{Content, Value};

/// GGUF `tokenizer.ggml.token_type` values that mark a token as special.
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// Byte-level BPE tokenizer: text ⇄ token ids.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    /// Token text by id, in the byte-level alphabet (a space is `Ġ`).
    tokens: Vec<String>,
    token_ids: HashMap<String, u32>,
    /// `(left, right)` → `(rank, merged id)`; lower rank merges first.
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// Special tokens, longest first so that matching prefers the longest.
    specials: Vec<(String, u32)>,
    byte_to_char: [char; 256],
    char_to_byte: HashMap<char, u8>,
}

impl Tokenizer {
    /// Builds a tokenizer from token strings, merges (`"a b"` pairs in rank
    /// order) and the ids that are special (matched literally in `encode`).
    pub fn new(
        tokens: Vec<String>,
        merges: &[String],
        special_ids: &[u32],
    ) -> anyhow::Result<Self> {
        let token_ids: HashMap<String, u32> = tokens
            .iter()
            .enumerate()
            .map(|(id, token)| (token.clone(), id as u32))
            .collect();
        let mut merge_table = HashMap::with_capacity(merges.len());
        for (rank, merge) in merges.iter().enumerate() {
            // Byte-level tokens never contain a real space, so it is a safe separator.
            let (left, right) = merge
                .split_once(' ')
                .with_context(|| format!("malformed merge {merge:?}"))?;
            let (Some(&left_id), Some(&right_id), Some(&merged_id)) = (
                token_ids.get(left),
                token_ids.get(right),
                token_ids.get(&format!("{left}{right}")),
            ) else {
                // A merge whose parts are not in the vocabulary can never fire.
                continue;
            };
            merge_table
                .entry((left_id, right_id))
                .or_insert((rank as u32, merged_id));
        }
        let mut specials = Vec::with_capacity(special_ids.len());
        for &id in special_ids {
            let token = tokens
                .get(id as usize)
                .with_context(|| format!("special token id {id} is outside the vocabulary"))?;
            specials.push((token.clone(), id));
        }
        specials.sort_by_key(|(token, _)| std::cmp::Reverse(token.len()));
        let byte_to_char = byte_to_char_map();
        let char_to_byte = byte_to_char
            .iter()
            .enumerate()
            .map(|(byte, &ch)| (ch, byte as u8))
            .collect();
        Ok(Tokenizer {
            tokens,
            token_ids,
            merges: merge_table,
            specials,
            byte_to_char,
            char_to_byte,
        })
    }

    /// Reads `tokenizer.ggml.tokens`, `.merges` and `.token_type` from GGUF
    /// metadata; control and user-defined tokens become special.
    pub fn from_gguf(content: &Content) -> anyhow::Result<Self> {
        let metadata = &content.metadata;
        if let Some(model) = metadata.get("tokenizer.ggml.model") {
            let model = model.to_string()?;
            if model != "gpt2" {
                bail!("unsupported tokenizer model {model:?}; only byte-level BPE (gpt2) is");
            }
        }
        let strings = |key: &str| -> anyhow::Result<Vec<String>> {
            let values = metadata
                .get(key)
                .with_context(|| format!("GGUF metadata has no {key}"))?
                .to_vec()?;
            values
                .iter()
                .map(|value| Ok(value.to_string()?.clone()))
                .collect()
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        let merges = strings("tokenizer.ggml.merges")?;
        let special_ids: Vec<u32> = match metadata.get("tokenizer.ggml.token_type") {
            Some(types) => types
                .to_vec()?
                .iter()
                .enumerate()
                .filter(|(_, kind)| {
                    matches!(
                        token_type(kind),
                        Some(TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED)
                    )
                })
                .map(|(id, _)| id as u32)
                .collect(),
            None => Vec::new(),
        };
        Tokenizer::new(tokens, &merges, &special_ids)
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The id of a token given in its vocabulary spelling (e.g. `<|im_end|>`).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.token_ids.get(token).copied()
    }

    /// Encodes text, turning literal special tokens (`<|im_start|>` …) into
    /// their single ids.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        let mut rest = text;
        while let Some((start, token, id)) = self.find_special(rest) {
            self.encode_ordinary_into(&rest[..start], &mut ids);
            ids.push(id);
            rest = &rest[start + token.len()..];
        }
        self.encode_ordinary_into(rest, &mut ids);
        ids
    }

    /// Encodes text as plain text: special-token spellings inside it are not
    /// special. Used for user content, so a message cannot forge chat turns.
    pub fn encode_ordinary(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        self.encode_ordinary_into(text, &mut ids);
        ids
    }

    /// The raw bytes of a token (special tokens give their spelling). Bytes
    /// rather than text because one character may span several tokens.
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        let Some(token) = self.tokens.get(id as usize) else {
            return Vec::new();
        };
        if self.specials.iter().any(|(_, special)| *special == id) {
            return token.as_bytes().to_vec();
        }
        token
            .chars()
            .map(|ch| match self.char_to_byte.get(&ch) {
                Some(&byte) => vec![byte],
                // Not from the byte alphabet: keep the character as UTF-8.
                None => ch.to_string().into_bytes(),
            })
            .collect::<Vec<_>>()
            .concat()
    }

    /// Decodes ids back to text (invalid UTF-8 becomes U+FFFD).
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().flat_map(|&id| self.token_bytes(id)).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The earliest special token in `text`, longest on ties.
    fn find_special<'a>(&'a self, text: &str) -> Option<(usize, &'a str, u32)> {
        self.specials
            .iter()
            .filter_map(|(token, id)| {
                text.find(token.as_str())
                    .map(|at| (at, token.as_str(), *id))
            })
            // `specials` is longest first and min_by_key keeps the first minimum.
            .min_by_key(|(at, _, _)| *at)
    }

    fn encode_ordinary_into(&self, text: &str, ids: &mut Vec<u32>) {
        for piece in pre_tokenize(text) {
            self.encode_piece(piece, ids);
        }
    }

    /// Byte-maps one pre-tokenized piece and applies merges, lowest rank first.
    fn encode_piece(&self, piece: &str, ids: &mut Vec<u32>) {
        let mut symbols: Vec<u32> = piece
            .bytes()
            .filter_map(|byte| {
                let mut buf = [0u8; 4];
                let spelled = self.byte_to_char[byte as usize].encode_utf8(&mut buf);
                // A byte-level vocabulary holds all 256 byte symbols; a byte
                // missing from a hand-made test vocabulary is simply dropped.
                self.token_ids.get(&*spelled).copied()
            })
            .collect();
        loop {
            let best = symbols
                .windows(2)
                .enumerate()
                .filter_map(|(at, pair)| {
                    self.merges
                        .get(&(pair[0], pair[1]))
                        .map(|&(rank, merged)| (rank, at, merged))
                })
                .min();
            let Some((_, at, merged)) = best else { break };
            symbols[at] = merged;
            symbols.remove(at + 1);
        }
        ids.extend(symbols);
    }
}

/// A `token_type` entry as an integer (GGUF files store it as i32).
fn token_type(value: &Value) -> Option<i32> {
    value
        .to_i32()
        .ok()
        .or_else(|| value.to_u32().ok().map(|v| v as i32))
}

/// GPT-2's reversible byte → printable character map: printable Latin-1 bytes
/// stand for themselves, the rest are shifted to U+0100 and up.
pub(crate) fn byte_to_char_map() -> [char; 256] {
    let mut map = ['\0'; 256];
    let mut shifted = 0u32;
    for byte in 0..=255u8 {
        let printable = matches!(byte, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        map[byte as usize] = if printable {
            byte as char
        } else {
            shifted += 1;
            char::from_u32(255 + shifted).expect("U+0100..U+0143 are valid chars")
        };
    }
    map
}

/// Splits text the way SmolLM2's pre-tokenizer does: every digit on its own,
/// then GPT-2's pattern
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
/// on the stretches between digits, written out by hand to avoid a regex engine
/// with look-ahead.
pub fn pre_tokenize(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut stretch_start = 0;
    for (at, ch) in text.char_indices() {
        if ch.is_numeric() {
            split_gpt2(&text[stretch_start..at], &mut pieces);
            pieces.push(&text[at..at + ch.len_utf8()]);
            stretch_start = at + ch.len_utf8();
        }
    }
    split_gpt2(&text[stretch_start..], &mut pieces);
    pieces
}

/// GPT-2's pattern on a stretch that holds no digits.
fn split_gpt2<'a>(text: &'a str, pieces: &mut Vec<&'a str>) {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let offset = |index: usize| chars.get(index).map_or(text.len(), |&(at, _)| at);
    let is_letter = |ch: char| ch.is_alphabetic();
    let is_other = |ch: char| !ch.is_whitespace() && !ch.is_alphabetic() && !ch.is_numeric();
    let run_end = |from: usize, class: &dyn Fn(char) -> bool| {
        (from..chars.len())
            .find(|&i| !class(chars[i].1))
            .unwrap_or(chars.len())
    };
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i].1;
        let next = chars.get(i + 1).map(|&(_, c)| c);
        let end = if let Some(len) = contraction_len(&text[offset(i)..]) {
            i + len
        } else if is_letter(ch) {
            run_end(i, &is_letter)
        } else if ch == ' ' && next.is_some_and(is_letter) {
            run_end(i + 1, &is_letter)
        } else if is_other(ch) {
            run_end(i, &is_other)
        } else if ch == ' ' && next.is_some_and(is_other) {
            run_end(i + 1, &is_other)
        } else {
            // Whitespace: `\s+(?!\S)` leaves the last blank of a run for the
            // word after it (so " world" keeps its space); a lone blank before
            // a non-space falls to `\s+`.
            let end = run_end(i, &|c: char| c.is_whitespace());
            if end < chars.len() && end - i > 1 {
                end - 1
            } else {
                end
            }
        };
        pieces.push(&text[offset(i)..offset(end)]);
        i = end;
    }
}

/// Length in chars of an English contraction suffix at the start of `text`.
fn contraction_len(text: &str) -> Option<usize> {
    ["'re", "'ve", "'ll", "'s", "'t", "'m", "'d"]
        .iter()
        .find(|suffix| text.starts_with(*suffix))
        .map(|suffix| suffix.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vocabulary of the byte symbols for "a", "b", " " (`Ġ`), "é" (two
    /// bytes) plus merged tokens and two specials.
    fn tiny() -> Tokenizer {
        let tokens = [
            "a", "b", "Ġ", "Ã", "©", "ab", "Ġab", "<|s|>", "<|s|>x", "Ã©",
        ];
        let tokens = tokens.iter().map(|t| t.to_string()).collect();
        // "Ġ ab" outranks nothing it competes with; "a b" must fire before it.
        let merges = ["a b", "Ġ ab", "Ã ©"].map(String::from);
        Tokenizer::new(tokens, &merges, &[7]).unwrap()
    }

    #[test]
    fn byte_map_is_gpt2s() {
        let map = byte_to_char_map();
        assert_eq!(map[b'a' as usize], 'a');
        assert_eq!(map[b' ' as usize], 'Ġ');
        assert_eq!(map[b'\n' as usize], 'Ċ');
        assert_eq!(map[0], 'Ā');
        let distinct: std::collections::HashSet<char> = map.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
    }

    #[test]
    fn merges_apply_by_rank() {
        let tokenizer = tiny();
        assert_eq!(tokenizer.encode("ab"), vec![5]);
        assert_eq!(tokenizer.encode(" ab"), vec![6]);
        assert_eq!(tokenizer.encode("ba"), vec![1, 0]);
        // Multi-byte characters go through the byte map: "é" is C3 A9.
        assert_eq!(tokenizer.encode("é"), vec![9]);
    }

    #[test]
    fn special_tokens_are_single_ids() {
        let tokenizer = tiny();
        assert_eq!(tokenizer.encode("ab<|s|>ab"), vec![5, 7, 5]);
        // Token 8 looks special but is not marked so: never matched literally.
        assert_eq!(tokenizer.encode("<|s|>x")[0], 7);
        assert_ne!(tokenizer.encode_ordinary("<|s|>"), vec![7]);
    }

    #[test]
    fn decode_round_trips() {
        let tokenizer = tiny();
        for text in ["ab ab", "é ba", "a<|s|>b"] {
            assert_eq!(tokenizer.decode(&tokenizer.encode(text)), text);
        }
    }

    #[test]
    fn pre_tokenizer_splits_like_gpt2_with_single_digits() {
        assert_eq!(
            pre_tokenize("Hello, world! It's 2024.  Ok\n"),
            vec![
                "Hello", ",", " world", "!", " It", "'s", " ", "2", "0", "2", "4", ".", " ", " Ok",
                "\n"
            ]
        );
        assert_eq!(pre_tokenize("a\n\nb  "), vec!["a", "\n", "\n", "b", "  "]);
    }
}
