from __future__ import annotations

from robustness.models.batching import bucketed_batches, encode, sorted_batches, token_lengths


def test_bucketed_batches_cover_every_example_once_and_group_lengths():
    lengths = [(i * 37) % 101 for i in range(1000)]
    batches = bucketed_batches(lengths, batch_size=16, seed=0, bucket_factor=8)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1000))
    spread = max(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches)
    # a bucket of 128 sorted lengths from 0..100 cut into 8 batches spans ~100/8 each; random batches of 16
    # would span nearly the whole 0..100 range
    assert spread < 25
    assert batches == bucketed_batches(lengths, batch_size=16, seed=0, bucket_factor=8)
    assert batches != bucketed_batches(lengths, batch_size=16, seed=1, bucket_factor=8)


def test_sorted_batches():
    assert sorted_batches([5, 1, 3, 2], 2) == [[1, 3], [2, 0]]


def test_encode_pads_to_longest_in_batch_only(minilm_tokenizer):
    batch = encode(minilm_tokenizer, ["a good movie", "bad"], max_length=128)
    assert batch["input_ids"].shape[1] == max(token_lengths(minilm_tokenizer, ["a good movie", "bad"], 128))
    pair = encode(minilm_tokenizer, [("a question ?", "an answer .")], max_length=128)
    assert int(pair["token_type_ids"].sum()) > 0
    assert encode(minilm_tokenizer, ["word " * 300], max_length=16)["input_ids"].shape[1] == 16
