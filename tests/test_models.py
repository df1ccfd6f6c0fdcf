"""Model loading: short names, local folders, hub ids (through a real offline hub cache), safety checks,
the manifest's model record, and the bundled models (the real MiniLM; minilm-sentiment built for real
in the slow test)."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, BertForSequenceClassification, BertModel, PreTrainedTokenizerFast

from audit.bundled import minilm_sentiment, registry
from audit.bundled.minilm import minilm_dir
from audit.bundled.registry import BUNDLED, bundled_dir, bundled_status, ensure_bundled
from audit.errors import UserError
from audit.models import describe_model, detect_task, load_model, resolve_model
from audit.tasks import TASKS

WORDS = ["the", "film", "was", "good", "bad", "he", "she", "is", "a", "nurse", "."]


def _save_tiny_bert(
    folder: Path,
    *,
    classifier: bool,
    labels: tuple[str, ...] = ("negative", "positive"),
    seed: int = 0,
    model_max_length: int | None = 40,
    vocab_size: int | None = None,
    config_extra: dict[str, Any] | None = None,
) -> Path:
    """A random-init 1-layer BERT and a WordPiece tokenizer, saved the standard way (safetensors).

    ``vocab_size`` overrides the config's (default: the tokenizer's size); ``config_extra`` is added
    to config.json as is (problem_type, auto_map, ...)."""
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    extra = {} if model_max_length is None else {"model_max_length": model_max_length}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        **extra,
    )
    config = BertConfig(
        vocab_size=len(vocab) if vocab_size is None else vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config) if classifier else BertModel(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if config_extra:
        saved = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**saved, **config_extra}))
    return folder


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- names ----------------------------------------------------------------------------------------


def test_resolve_model_maps_short_names_paths_and_hub_ids(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PROBELENS_HOME", str(tmp_path / "home"))
    assert resolve_model("minilm-sentiment") == str(tmp_path / "home" / "models" / "minilm-sentiment")
    assert resolve_model("minilm") == str(minilm_dir())
    assert (minilm_dir() / "config.json").is_file()

    (tmp_path / "sub").mkdir()
    assert resolve_model(str(tmp_path / "sub")) == str(tmp_path / "sub")
    monkeypatch.chdir(tmp_path)
    assert resolve_model("sub") == str(tmp_path / "sub")  # relative paths become absolute

    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    assert resolve_model("bert-base-uncased") == "bert-base-uncased"
    with pytest.raises(UserError, match="empty"):
        resolve_model("  ")


def test_bundled_dir_follows_probelens_home(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PROBELENS_HOME", str(tmp_path))
    assert bundled_dir() == tmp_path / "models"
    monkeypatch.delenv("PROBELENS_HOME")
    assert bundled_dir() == Path.home() / ".cache" / "probelens" / "models"


# --- the real MiniLM ------------------------------------------------------------------------------


def test_real_minilm_loads_as_a_mean_pooled_normalised_encoder() -> None:
    loaded = load_model("minilm")
    assert loaded.task == "embedding"
    assert loaded.pooling == "mean" and loaded.normalize is True
    assert loaded.labels == []
    assert loaded.max_length == 256  # sentence_bert_config's max_seq_length, below the 512 positions
    assert loaded.source == str(minilm_dir()) and loaded.revision is None
    assert loaded.weight_hash == _sha256(minilm_dir() / "model.safetensors")
    assert not loaded.model.training and loaded.device == torch.device("cpu")

    encoded = loaded.tokenizer(["Hello world"], return_offsets_mapping=True, return_tensors="pt")
    assert encoded["offset_mapping"][0].tolist() == [[0, 0], [0, 5], [6, 11], [0, 0]]
    with torch.no_grad():
        hidden = loaded.model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"])
    assert hidden.last_hidden_state.shape == (1, 4, 384)

    record = describe_model(loaded)
    assert record["n_parameters"] == 22_713_216
    assert record["task"] == "embedding" and record["pooling"] == "mean"
    json.dumps(record)  # the manifest must be able to store it


# --- local folders --------------------------------------------------------------------------------


def test_tiny_classifier_is_detected_with_its_labels_in_id_order(tmp_path) -> None:
    folder = _save_tiny_bert(tmp_path / "clf", classifier=True, labels=("neg", "neutral", "pos"))
    loaded = load_model(str(folder))
    assert loaded.task == "text-classification"
    assert loaded.labels == ["neg", "neutral", "pos"]
    assert loaded.max_length == 40  # tokenizer limit 40 < 64 positions
    assert type(loaded.model).__name__ == "BertForSequenceClassification"
    assert loaded.name == str(folder) and loaded.source == str(folder)
    record = describe_model(loaded)
    assert record["labels"] == ["neg", "neutral", "pos"] and record["pooling"] is None

    # the same folder used as an encoder: allowed on request, no labels
    as_encoder = load_model(str(folder), task="embedding")
    assert as_encoder.task == "embedding" and as_encoder.labels == []
    assert type(as_encoder.model).__name__ == "BertModel"


def test_max_length_ignores_the_no_limit_sentinel(tmp_path) -> None:
    folder = _save_tiny_bert(tmp_path / "enc", classifier=False, model_max_length=None)
    loaded = load_model(str(folder))
    assert loaded.tokenizer.model_max_length > 10**20  # transformers' "no limit" value
    assert loaded.max_length == 64  # so the config's position embeddings decide
    assert loaded.task == "embedding" and loaded.pooling == "mean" and loaded.normalize is False


def test_sentence_transformers_folder_is_an_embedding_model_with_its_pooling(tmp_path) -> None:
    folder = _save_tiny_bert(tmp_path / "st", classifier=False)
    config = json.loads((folder / "config.json").read_text())
    del config["architectures"]  # only the sentence-transformers files say what it is
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            ]
        )
    )
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": 16,
                "pooling_mode_cls_token": True,
                "pooling_mode_mean_tokens": False,
            }
        )
    )
    loaded = load_model(str(folder))
    assert loaded.task == "embedding" and loaded.pooling == "cls" and loaded.normalize is False

    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_max_tokens": True}))
    with pytest.raises(UserError, match="pools with max_tokens"):
        load_model(str(folder))


def test_detect_task_reads_architectures_and_names_the_choices() -> None:
    assert detect_task(BertConfig(architectures=["BertForSequenceClassification"])) == "text-classification"
    assert detect_task(BertConfig(architectures=["BertModel"])) == "embedding"
    from transformers import BartConfig, GPT2Config, LlamaConfig, T5Config

    assert detect_task(BertConfig(architectures=["BertForMaskedLM"])) == "masked-lm"
    assert detect_task(BertConfig(architectures=["BertForTokenClassification"])) == "token-classification"
    assert detect_task(BertConfig(architectures=["BertForQuestionAnswering"])) == "question-answering"
    assert detect_task(GPT2Config(architectures=["GPT2LMHeadModel"])) == "causal-lm"
    assert detect_task(LlamaConfig(architectures=["LlamaForCausalLM"])) == "causal-lm"
    assert detect_task(T5Config(architectures=["T5ForConditionalGeneration"])) == "seq2seq"
    assert detect_task(BartConfig(architectures=["BartForConditionalGeneration"])) == "seq2seq"
    assert detect_task(BertConfig(architectures=["MarianMTModel"])) == "seq2seq"
    with pytest.raises(UserError) as caught:
        detect_task(GPT2Config(architectures=["GPT2DoubleHeadsModel"]))
    assert "GPT2DoubleHeadsModel" in str(caught.value)
    assert all(task in str(caught.value) for task in TASKS) and "--task" in str(caught.value)
    with pytest.raises(UserError, match="--task"):
        detect_task(GPT2Config(architectures=["GPT2Model"]))  # a decoder is not a sentence encoder


def test_weight_hash_is_the_weights_sha256_and_changes_with_the_weights(tmp_path) -> None:
    first = _save_tiny_bert(tmp_path / "a", classifier=True, seed=0)
    twin = _save_tiny_bert(tmp_path / "b", classifier=True, seed=0)
    other = _save_tiny_bert(tmp_path / "c", classifier=True, seed=1)
    hashes = [load_model(str(f)).weight_hash for f in (first, first, twin, other)]
    assert hashes[0] == _sha256(first / "model.safetensors")
    assert hashes[0] == hashes[1] == hashes[2]  # same weights, same hash, wherever they are
    assert hashes[3] != hashes[0]


# --- errors a user can act on ---------------------------------------------------------------------


def test_missing_folder_and_folder_without_config_are_clear_errors(tmp_path) -> None:
    with pytest.raises(UserError, match="no such model folder"):
        load_model(str(tmp_path / "nope"))
    with pytest.raises(UserError, match="no such model folder"):
        load_model("./no/such/model/folder")
    with pytest.raises(UserError, match="model folder not found"):
        load_model("not a hub id/nor a folder")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no config.json"):
        load_model(str(tmp_path / "empty"))
    with pytest.raises(
        UserError, match="unknown task 'ner'; choose one of: auto, text-classification, embedding"
    ):
        load_model(str(tmp_path / "empty"), task="ner")


def test_pickle_only_weights_need_allow_pickle(tmp_path) -> None:
    folder = _save_tiny_bert(tmp_path / "pickled", classifier=True)
    state = BertForSequenceClassification.from_pretrained(folder).state_dict()
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    with pytest.raises(UserError, match="--allow-pickle"):
        load_model(str(folder))
    loaded = load_model(str(folder), allow_pickle=True)
    assert loaded.task == "text-classification"
    assert loaded.weight_hash == _sha256(folder / "pytorch_model.bin")


def test_classification_task_on_a_model_without_a_head_is_refused(tmp_path) -> None:
    folder = _save_tiny_bert(tmp_path / "encoder", classifier=False)
    with pytest.raises(
        UserError, match="no trained classification head.*classifier.weight.*--task embedding"
    ):
        load_model(str(folder), task="text-classification")


def test_revision_is_refused_for_local_folders(tmp_path) -> None:
    folder = _save_tiny_bert(tmp_path / "clf", classifier=True)
    with pytest.raises(UserError, match="--revision applies to hub models"):
        load_model(str(folder), revision="main")


# --- hub ids, through a real hub cache, offline ---------------------------------------------------


def _fake_hub_cache(cache: Path, repo_id: str, folder: Path, commit: str) -> None:
    """Lay out a model folder the way huggingface_hub caches a download (blobs named by sha256)."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for file in folder.iterdir():
        digest = _sha256(file)
        shutil.copy(file, repo / "blobs" / digest)
        (snapshot / file.name).symlink_to(Path("..") / ".." / "blobs" / digest)


def test_hub_id_loads_from_the_hub_cache_pinned_to_its_commit(tmp_path, monkeypatch) -> None:
    import huggingface_hub.constants

    folder = _save_tiny_bert(tmp_path / "clf", classifier=True, labels=("no", "yes"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    _fake_hub_cache(tmp_path / "hub", "probelens-test/tiny-clf", folder, commit)
    # the hub cache location and offline mode, read by huggingface_hub (and transformers) at call time
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    for revision in (None, "main", commit):
        loaded = load_model("probelens-test/tiny-clf", revision=revision)
        assert loaded.source == "probelens-test/tiny-clf"
        assert loaded.revision == commit  # a branch is resolved to the commit that was loaded
        assert loaded.weight_hash == _sha256(folder / "model.safetensors")
        assert loaded.task == "text-classification" and loaded.labels == ["no", "yes"]

    with pytest.raises(
        UserError, match="cannot reach the Hugging Face hub for probelens-test/not-downloaded"
    ):
        load_model("probelens-test/not-downloaded")
    with pytest.raises(UserError, match="probelens-test/tiny-clf@v9"):
        load_model("probelens-test/tiny-clf", revision="v9")
    with pytest.raises(UserError, match="did you mean the bundled model 'minilm-sentiment'"):
        load_model("minilm-sentimnet")

    # a hub repo with only pickle weights
    pickled = _save_tiny_bert(tmp_path / "pickled", classifier=True)
    torch.save(
        BertForSequenceClassification.from_pretrained(pickled).state_dict(), pickled / "pytorch_model.bin"
    )
    (pickled / "model.safetensors").unlink()
    _fake_hub_cache(tmp_path / "hub", "probelens-test/pickled", pickled, commit)
    with pytest.raises(UserError, match="no safetensors weights.*--allow-pickle"):
        load_model("probelens-test/pickled")
    loaded = load_model("probelens-test/pickled", allow_pickle=True)
    assert loaded.weight_hash == _sha256(pickled / "pytorch_model.bin") and loaded.revision == commit


# --- the bundled models ---------------------------------------------------------------------------


def test_bundled_names_and_status(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PROBELENS_HOME", str(tmp_path))
    assert set(BUNDLED) == {"minilm", "minilm-sentiment", "smollm2"}
    assert BUNDLED["minilm"].task == "embedding" and BUNDLED["minilm-sentiment"].task == "text-classification"
    assert BUNDLED["smollm2"].task == "causal-lm"
    assert bundled_status("smollm2") == (False, tmp_path / "models" / "smollm2")
    assert bundled_status("minilm") == (True, minilm_dir())
    assert ensure_bundled("minilm") == minilm_dir()
    assert bundled_status("minilm-sentiment") == (False, tmp_path / "models" / "minilm-sentiment")

    # a half-written folder (no completion marker) is never taken as a finished build
    half = _save_tiny_bert(tmp_path / "models" / "minilm-sentiment", classifier=True)
    assert bundled_status("minilm-sentiment") == (False, half)
    # nor is a build made by another version of the recipe
    (half / registry._COMPLETE_MARKER).write_text(
        json.dumps({"recipe_version": minilm_sentiment.RECIPE_VERSION - 1})
    )
    assert bundled_status("minilm-sentiment")[0] is False

    with pytest.raises(
        UserError, match="unknown bundled model 'bert'; choose one of: minilm-sentiment, minilm"
    ):
        ensure_bundled("bert")


def test_training_data_is_public_deduplicated_and_split_without_overlap() -> None:
    examples = minilm_sentiment._load_examples()
    sources = {e.source for e in examples}
    assert sources == {"tweets", "imdb"}
    assert len({e.text.casefold() for e in examples}) == len(examples)
    assert not any("<br" in e.text for e in examples)
    train, test = minilm_sentiment._stratified_split(
        examples, test_fraction=minilm_sentiment.TEST_FRACTION, seed=0
    )
    assert not {e.text for e in train} & {e.text for e in test}
    assert len(train) + len(test) == len(examples)
    again, _ = minilm_sentiment._stratified_split(
        examples, test_fraction=minilm_sentiment.TEST_FRACTION, seed=0
    )
    assert [e.text for e in again] == [e.text for e in train]  # seeded: the same split every time
    for source in sources:
        for label in (0, 1):
            n_all = sum(e.source == source and e.label == label for e in examples)
            n_test = sum(e.source == source and e.label == label for e in test)
            assert abs(n_test - n_all * minilm_sentiment.TEST_FRACTION) <= 1  # stratified


@pytest.mark.slow
def test_minilm_sentiment_builds_once_reaches_80_percent_and_loads_by_its_short_name(
    tmp_path, monkeypatch
) -> None:
    """The real recipe (about 80 s on 2 CPU cores), built into a fresh PROBELENS_HOME."""
    monkeypatch.setenv("PROBELENS_HOME", str(tmp_path))
    folder = ensure_bundled("minilm-sentiment")
    assert folder == tmp_path / "models" / "minilm-sentiment"
    assert bundled_status("minilm-sentiment") == (True, folder)
    assert [p.name for p in folder.parent.iterdir() if p.is_dir()] == ["minilm-sentiment"]  # no staging left

    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["heldout_accuracy"] >= 0.80
    assert metrics["heldout_accuracy"] > metrics["majority_class_baseline_accuracy"] + 0.2
    assert metrics["n_test"] + metrics["n_train"] == len(minilm_sentiment._load_examples())
    card = (folder / "README.md").read_text()
    assert f"{metrics['heldout_accuracy']:.1%}" in card and "Apache-2.0" in card and "MIT" in card

    started = time.perf_counter()
    assert ensure_bundled("minilm-sentiment") == folder  # present: no second build
    assert time.perf_counter() - started < 1.0

    loaded = load_model("minilm-sentiment")
    assert loaded.task == "text-classification" and loaded.labels == ["negative", "positive"]
    assert loaded.source == str(folder) and loaded.weight_hash == _sha256(folder / "model.safetensors")
    texts = ["What a wonderful, delightful film.", "The service was slow and rude."]
    with torch.no_grad():
        logits = loaded.model(**loaded.tokenizer(texts, padding=True, return_tensors="pt")).logits
    assert logits.argmax(dim=-1).tolist() == [1, 0]


# --- review findings: tokenizers, typos, heads, remote code ---------------------------------------


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to reach the Hugging Face hub fails the test (names must fail before that)."""
    import huggingface_hub

    def refuse(*args: Any, **kwargs: Any) -> Any:
        pytest.fail(f"the hub was asked for {args} {kwargs}")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)


@pytest.fixture
def offline_hub(tmp_path, monkeypatch) -> Path:
    """An empty huggingface_hub cache, offline; fill it with _fake_hub_cache."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return tmp_path / "hub"


COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _drop_tokenizer_vocabulary(folder: Path) -> None:
    for file in ("tokenizer.json", "vocab.txt"):
        (folder / file).unlink(missing_ok=True)


def test_folder_without_a_tokenizer_vocabulary_is_refused(tmp_path) -> None:
    # only config.json, weights and tokenizer_config.json: transformers would build a 5-token
    # tokenizer on its own and every word would become [UNK]
    folder = _save_tiny_bert(tmp_path / "no-vocab", classifier=True)
    _drop_tokenizer_vocabulary(folder)
    with pytest.raises(UserError) as caught:
        load_model(str(folder))
    message = str(caught.value)
    assert str(folder) in message and "tokenizer_config.json" in message
    assert "tokenizer.json" in message and "vocab.txt" in message and "sentencepiece" in message
    assert "tokenizer.save_pretrained" in message

    (folder / "tokenizer_config.json").unlink()  # config.json and weights only
    with pytest.raises(UserError, match="no tokenizer vocabulary.*tokenizer.save_pretrained"):
        load_model(str(folder))


def test_hub_model_without_a_tokenizer_vocabulary_is_refused(tmp_path, offline_hub) -> None:
    folder = _save_tiny_bert(tmp_path / "no-vocab", classifier=True)
    _drop_tokenizer_vocabulary(folder)
    _fake_hub_cache(offline_hub, "probelens-test/no-vocab", folder, COMMIT)
    with pytest.raises(UserError, match="probelens-test/no-vocab has no tokenizer vocabulary"):
        load_model("probelens-test/no-vocab")
    (folder / "tokenizer_config.json").unlink()  # config.json and weights only: transformers falls back
    _fake_hub_cache(offline_hub, "probelens-test/bare", folder, COMMIT)
    with pytest.raises(UserError, match="probelens-test/bare has no tokenizer vocabulary"):
        load_model("probelens-test/bare")


def _add_tokens_without_resizing(folder: Path, tokens: list[str]) -> None:
    """Tokens added to the tokenizer after training, the embeddings left at their size."""
    tokenizer = PreTrainedTokenizerFast.from_pretrained(folder)
    tokenizer.add_tokens(tokens)
    tokenizer.save_pretrained(folder)


def test_tokenizer_with_ids_beyond_the_vocabulary_is_refused(tmp_path, offline_hub) -> None:
    folder = _save_tiny_bert(tmp_path / "grown", classifier=True)
    _add_tokens_without_resizing(folder, ["doctor", "engineer"])
    with pytest.raises(UserError, match="has 18 tokens but the model's config.vocab_size is 16"):
        load_model(str(folder))
    _fake_hub_cache(offline_hub, "probelens-test/grown", folder, COMMIT)
    with pytest.raises(UserError, match="out of range"):
        load_model("probelens-test/grown")


def test_tokenizer_far_smaller_than_the_vocabulary_is_a_warning(tmp_path, caplog) -> None:
    folder = _save_tiny_bert(tmp_path / "mismatched", classifier=True, vocab_size=200)  # 16 < 10% of 200
    loaded = load_model(str(folder))
    assert len(loaded.tokenizer) == 16
    assert any("only 16 tokens" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    assert describe_model(loaded)["load_warnings"] == loaded.warnings and len(loaded.warnings) == 1

    caplog.clear()
    fitting = load_model(str(_save_tiny_bert(tmp_path / "fitting", classifier=True)))
    assert fitting.warnings == [] and not caplog.records


def test_typo_of_a_bundled_name_fails_fast_without_the_network(no_network) -> None:
    for typo in ("minilm-sentimnt", "minilm-sentimnet", "MiniLM"):
        started = time.perf_counter()
        with pytest.raises(UserError, match="did you mean the bundled model") as caught:
            load_model(typo)
        assert time.perf_counter() - started < 1.0
        assert "hub" not in str(caught.value).split("did you mean")[0]  # the hint, not a hub failure
    with pytest.raises(UserError, match="did you mean the bundled model 'minilm-sentiment'"):
        resolve_model("minilm-sentimnt")  # what the CLI checks before running anything
    assert resolve_model("bert-base-uncased") == "bert-base-uncased"  # far from any bundled name


def test_missing_path_like_names_fail_fast_without_the_network(tmp_path, no_network) -> None:
    for name in ("./nope-model", "../nope-model", "/nonexistent/probelens/model", "~/nope-probelens-model"):
        with pytest.raises(UserError, match="no such model folder"):
            resolve_model(name)
        with pytest.raises(UserError, match="no such model folder"):
            load_model(name)


def test_regression_head_is_refused_with_its_name_and_num_labels(tmp_path) -> None:
    folder = _save_tiny_bert(tmp_path / "scorer", classifier=True, labels=("score",))
    assert json.loads((folder / "config.json").read_text())["id2label"] == {"0": "score"}
    with pytest.raises(UserError, match=r"scorer has a regression head \(num_labels=1.*not supported yet"):
        load_model(str(folder))
    declared = _save_tiny_bert(
        tmp_path / "declared", classifier=True, config_extra={"problem_type": "regression"}
    )
    with pytest.raises(UserError, match=r"regression head \(num_labels=2"):
        load_model(str(declared))
    # its encoder can still be audited as an embedding model
    assert load_model(str(folder), task="embedding").task == "embedding"


def test_problem_type_tells_single_label_from_multi_label_heads(tmp_path) -> None:
    single = load_model(str(_save_tiny_bert(tmp_path / "single", classifier=True)))
    assert single.problem_type == "single_label_classification"
    assert describe_model(single)["problem_type"] == "single_label_classification"

    folder = _save_tiny_bert(
        tmp_path / "multi",
        classifier=True,
        labels=("toxic", "insult", "threat"),
        config_extra={"problem_type": "multi_label_classification"},
    )
    multi = load_model(str(folder))
    assert multi.problem_type == "multi_label_classification"
    assert multi.labels == ["toxic", "insult", "threat"]
    assert describe_model(multi)["problem_type"] == "multi_label_classification"
    assert describe_model(load_model(str(folder), task="embedding"))["problem_type"] is None


def test_custom_remote_code_is_not_run_and_says_so(tmp_path, caplog) -> None:
    auto_map = {
        "AutoConfig": "configuration_custom.CustomConfig",
        "AutoModelForSequenceClassification": "modeling_custom.CustomForSequenceClassification",
    }
    folder = _save_tiny_bert(tmp_path / "custom", classifier=True, config_extra={"auto_map": auto_map})
    loaded = load_model(str(folder))
    assert type(loaded.model).__name__ == "BertForSequenceClassification"  # the stock class
    assert loaded.remote_code_ignored is True
    record = describe_model(loaded)
    assert record["remote_code_ignored"] is True
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1
    assert "NOT run" in warned[0] and "modeling_custom.CustomForSequenceClassification" in warned[0]
    assert "stock" in warned[0] and "may differ" in warned[0] and record["load_warnings"] == warned

    plain = load_model(str(_save_tiny_bert(tmp_path / "plain", classifier=True)))
    assert plain.remote_code_ignored is False and describe_model(plain)["remote_code_ignored"] is False
