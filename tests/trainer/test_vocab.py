import collections

from trainer import vocab


def test_id_vocab_keeps_known_rows_and_appends_new_ids_by_frequency():
    known = ["[UNK]", "p1", "p2"]
    counts = collections.Counter({"p2": 5, "p9": 3, "p7": 3, "p8": 9, "": 4})
    grown = vocab.grow_id_vocab(known, counts, limit=5)
    assert grown[:3] == known
    assert grown[3:] == ["p8", "p7"]  # most frequent first, ties by id, capped at the limit


def test_learned_wordpiece_vocab_splits_chinese_into_characters():
    texts = ["跑鞋 男 running shoes", "小米 手机 phone"] * 30
    learned = vocab.learn_wordpiece_vocab(texts, vocab_size=200)
    assert learned[:4] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    for char in "跑鞋男小米手机":
        assert char in learned
    vocab.check_bert_vocab(learned, "learned")
