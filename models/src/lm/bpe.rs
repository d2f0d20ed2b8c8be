//! A byte-level BPE tokenizer trained on a corpus by the tokenizers crate, with ChatML's
//! special tokens and every digit its own token (as Qwen and Llama 3 split numbers, so that
//! arithmetic is learned digit by digit rather than through merged digit pairs).

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, Tokenizer};

/// End of a text; also the padding token.
pub const END_OF_TEXT: &str = "<|endoftext|>";
pub const IM_START: &str = "<|im_start|>";
/// End of a chat turn: where a reply stops.
pub const IM_END: &str = "<|im_end|>";
/// The special tokens, ids 0, 1 and 2 of a trained tokenizer.
pub const SPECIALS: [&str; 3] = [END_OF_TEXT, IM_START, IM_END];

/// ChatML, as SmolLM2 writes it.
pub const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// The smallest vocabulary: the special tokens and the 256 byte symbols.
pub const MIN_VOCAB: usize = SPECIALS.len() + 256;

/// Trains a tokenizer of at most `vocab_size` tokens on `texts`.
pub fn train(texts: &[String], vocab_size: usize) -> Result<Tokenizer, String> {
    if vocab_size < MIN_VOCAB {
        return Err(format!(
            "a vocabulary of {vocab_size} is too small: a byte-level tokenizer needs at least \
             {MIN_VOCAB} (256 bytes and {} special tokens)",
            SPECIALS.len()
        ));
    }
    let mut tok = Tokenizer::new(BPE::default());
    tok.with_pre_tokenizer(Some(Sequence::new(vec![
        Digits::new(true).into(),
        ByteLevel::new(false, true, true).into(),
    ])));
    tok.with_decoder(Some(ByteLevelDecoder::default()));
    let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(
            SPECIALS
                .iter()
                .map(|s| AddedToken::from(s.to_string(), true))
                .collect(),
        )
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build()
        .into();
    tok.train(&mut trainer, texts.iter())
        .map_err(|e| format!("training the tokenizer: {e}"))?;
    Ok(tok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trained_tokenizer_splits_digits_keeps_specials_and_round_trips() {
        let texts: Vec<String> = (0..200)
            .map(|i| format!("user assistant {i}+{} = {}", i * 7, i * 8))
            .collect();
        let tok = train(&texts, 300).unwrap();
        assert!(tok.get_vocab_size(true) <= 300);
        for (i, s) in SPECIALS.iter().enumerate() {
            assert_eq!(tok.token_to_id(s), Some(i as u32), "{s}");
        }
        let text = "<|im_start|>user\n123+45<|im_end|>";
        let enc = tok.encode(text, false).unwrap();
        let toks = enc.get_tokens();
        assert_eq!(toks[0], IM_START);
        assert_eq!(toks.last().unwrap(), IM_END);
        for d in ["1", "2", "3", "4", "5"] {
            assert!(toks.iter().any(|t| t == d), "{toks:?}");
        }
        assert!(toks.iter().any(|t| t == "user"), "merged: {toks:?}");
        assert_eq!(tok.decode(enc.get_ids(), false).unwrap(), text);
        assert_eq!(tok.decode(enc.get_ids(), true).unwrap(), "user\n123+45");
        // Bytes never seen in training still encode (the byte alphabet is complete).
        let odd = tok.encode("é€", false).unwrap();
        assert_eq!(tok.decode(odd.get_ids(), true).unwrap(), "é€");
        assert!(train(&texts, 100).unwrap_err().contains("at least 259"));
    }
}
