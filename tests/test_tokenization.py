"""Coverage counts (audit/tokenization.py) on tokenizers built here: WordPiece with an unknown
token, SentencePiece-style BPE with byte fallback, and byte-level BPE."""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from audit.tokenization import count_chars, count_words, token_counts

CORPUS = ["the food was good", "the room was bad", "good food", "bad room"] * 20


def wordpiece() -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(
        CORPUS, trainers.WordPieceTrainer(vocab_size=60, special_tokens=["[UNK]", "[PAD]"])
    )
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]")


def byte_fallback_bpe() -> PreTrainedTokenizerFast:
    """Llama-style: BPE over characters, unknown characters spelled as <0xNN> byte pieces."""
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace()])
    byte_pieces = [f"<0x{i:02X}>" for i in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", *byte_pieces])
    tokenizer.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>")


def byte_level_bpe() -> PreTrainedTokenizerFast:
    """GPT-2-style: every byte has a token, so nothing is unknown; a character the merges never
    saw is spelled in pieces that decode to part of it."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer)


def test_unknown_tokens_are_counted_and_known_text_has_none() -> None:
    tokenizer = wordpiece()
    known, unknown = token_counts(tokenizer, ["the food was good", "the 食物 was good"], ["en", "en"])
    assert known.n_unknown == 0
    assert known.n_byte_fallback == 0
    assert unknown.n_unknown >= 1
    assert known.n_unknown_chars == 0 and unknown.n_unknown_chars == 2  # 食物, whatever it became in tokens
    assert unknown.n_text_tokens == len(tokenizer("the 食物 was good", add_special_tokens=False)["input_ids"])


def test_byte_pieces_are_counted_as_byte_fallback() -> None:
    tokenizer = byte_fallback_bpe()
    (english,) = token_counts(tokenizer, ["the food was good"], ["en"])
    (chinese,) = token_counts(tokenizer, ["食物"], ["zh"])
    assert english.n_byte_fallback == 0
    assert chinese.n_byte_fallback == 6  # two characters of three UTF-8 bytes each
    assert chinese.n_unknown == 0


def test_byte_level_pieces_of_unseen_characters_count_as_byte_fallback() -> None:
    tokenizer = byte_level_bpe()
    (english,) = token_counts(tokenizer, ["the food was good"], ["en"])
    (chinese,) = token_counts(tokenizer, ["食物"], ["zh"])
    assert english.n_byte_fallback == 0
    assert chinese.n_byte_fallback == chinese.n_text_tokens >= 2


def test_words_keep_their_combining_marks_and_unspaced_scripts_have_none() -> None:
    assert count_words("यह खाना बहुत अच्छा था।", "hi") == 5  # vowel signs stay inside their word
    assert count_words("L'hôtel était très propre.", "fr") == 5
    assert count_words("这家餐厅的菜真好吃。", "zh") is None
    assert count_words("このレストランの料理は本当に美味しかった。", "ja") is None
    assert count_chars("a b\tc\n") == 3
