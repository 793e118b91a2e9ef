"""Tokenised splits are cached per (examples, tokenizer, max length) and reused."""

from __future__ import annotations

from omegaconf import OmegaConf

from tunewright.plugin_manager import get_plugins
from tunewright.token_cache import cache_key, encode_cached

EXAMPLES = [
    {"text": "great value", "label": 1, "sensitive": {"region": "n"}},
    {"text": "broke after a week", "text_pair": "support never answered", "label": 0},
]


def task_for(model_dir, max_length=32):
    return (
        get_plugins()
        .registries["models"]
        .build(
            OmegaConf.create(
                {
                    "kind": "sequence_classification",
                    "name_or_path": str(model_dir),
                    "max_length": max_length,
                    "trust_remote_code": False,
                    "revision": None,
                }
            )
        )
    )


def counting(task):
    calls = []
    original = task.encode

    def encode(examples):
        calls.append(len(examples))
        return original(examples)

    task.encode = encode
    return calls


def test_second_encoding_comes_from_the_cache_and_is_identical(tiny_bert, tmp_path):
    examples = [dict(e) for e in EXAMPLES[:1]] * 3 + [{"text": "ok", "label": 0}]
    first_task, second_task = task_for(tiny_bert), task_for(tiny_bert)
    first_calls, second_calls = counting(first_task), counting(second_task)
    first = encode_cached(first_task, examples, tmp_path)
    second = encode_cached(second_task, examples, tmp_path)
    assert first_calls == [4] and second_calls == [] and second == first
    assert len(list((tmp_path / "tokens").glob("*.npz"))) == 1


def test_key_changes_with_data_length_and_labels_but_not_with_sensitive_features(tiny_bert):
    task = task_for(tiny_bert)
    key, identity = cache_key(task, EXAMPLES), task._identity()
    task.encode(EXAMPLES)  # encoding sets the tokenizer's truncation state: the identity must not move
    assert task._identity() == identity and cache_key(task, EXAMPLES) == key
    assert cache_key(task_for(tiny_bert, max_length=16), EXAMPLES) != key
    assert cache_key(task, [{**EXAMPLES[0], "label": 0}, EXAMPLES[1]]) != key
    assert cache_key(task, [{**EXAMPLES[0], "text": "great value!"}, EXAMPLES[1]]) != key
    assert cache_key(task, [{**EXAMPLES[0], "sensitive": {"region": "s"}}, EXAMPLES[1]]) == key


def test_the_key_covers_exactly_the_fields_a_task_declares(tiny_bert):
    class ReadsPrompt(type(task_for(tiny_bert))):
        example_fields = ("text", "label", "prompt")  # a plugin task that reads one more field

    task = ReadsPrompt(task_for(tiny_bert).cfg)
    with_prompt = [{**EXAMPLES[0], "prompt": "Summarise:"}, EXAMPLES[1]]
    assert cache_key(task, with_prompt) != cache_key(task, [{**with_prompt[0], "prompt": "Translate:"}, EXAMPLES[1]])
    assert cache_key(task_for(tiny_bert), with_prompt) == cache_key(
        task_for(tiny_bert), EXAMPLES
    )  # not read, not keyed


def test_an_unreadable_entry_is_rebuilt(tiny_bert, tmp_path, capsys):
    task = task_for(tiny_bert)
    expected = encode_cached(task, EXAMPLES, tmp_path)
    (entry,) = (tmp_path / "tokens").glob("*.npz")
    entry.write_bytes(b"not a numpy archive")
    assert encode_cached(task, EXAMPLES, tmp_path) == expected
    assert "rebuilding unreadable token cache entry" in capsys.readouterr().err
