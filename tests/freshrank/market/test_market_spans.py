"""write_span: exact CSV contract, atomic completion marker, refusal to clobber complete spans."""

import csv
import datetime

import pytest

from freshrank.market import SPAN_COLUMNS, write_span

DAY = datetime.date(2026, 11, 1)


def _row(i: int, **over) -> dict:
    row = {
        "request_id": "r20261101-000001", "event_time": "2026-11-01T08:15:02Z", "user_id": "u000001",
        "query": "跑步鞋 男", "product_id": f"p{i:07d}", "title": "Nike 耐克 Air 跑鞋 42码 黑色",
        "brand": "Nike", "category": "shoes", "price": 499.5, "position": i, "clicked": 0, "purchased": 0,
    }
    row.update(over)
    return row


def test_columns_are_the_contract():
    assert SPAN_COLUMNS == ("request_id", "event_time", "user_id", "query", "product_id", "title", "brand",
                            "category", "price", "position", "clicked", "purchased")


def test_write_span_layout_and_round_trip(tmp_path):
    tricky = 'Brand "X", 小米, comma\nnewline'
    rows = [_row(1, title=tricky, clicked=1, purchased=1), _row(2, price=3)]
    folder = write_span(tmp_path, DAY, rows)
    assert folder == tmp_path / "2026-11-01"
    assert sorted(p.name for p in folder.iterdir()) == ["_SUCCESS", "part-00000.csv"]
    assert (folder / "_SUCCESS").read_bytes() == b""
    raw = (folder / "part-00000.csv").read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    assert raw.startswith(b"request_id,event_time,user_id,query,product_id,title,brand,category,price,"
                          b"position,clicked,purchased\n")
    assert b"\r\n" not in raw
    with open(folder / "part-00000.csv", encoding="utf-8", newline="") as f:
        back = list(csv.DictReader(f))
    assert back[0]["title"] == tricky
    assert [r["price"] for r in back] == ["499.50", "3.00"]
    assert [r["position"] for r in back] == ["1", "2"]
    assert back[0]["clicked"] == "1" and back[0]["purchased"] == "1"


def test_refuses_to_overwrite_complete_span(tmp_path):
    write_span(tmp_path, DAY, [_row(1)])
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_span(tmp_path, DAY, [_row(1, query="other")])
    folder = write_span(tmp_path, DAY, [_row(1, query="replaced")], overwrite=True)
    text = (folder / "part-00000.csv").read_text(encoding="utf-8")
    assert "replaced" in text and "跑步鞋" not in text
    assert (folder / "_SUCCESS").exists()


def test_incomplete_leftovers_do_not_block_and_are_replaced(tmp_path):
    folder = tmp_path / "2026-11-01"
    folder.mkdir()
    (folder / ".part-00000.csv.tmp").write_text("half written", encoding="utf-8")
    (folder / "part-00000.csv").write_text("stale,data\n", encoding="utf-8")
    (folder / "part-00001.csv").write_text("stale,data\n", encoding="utf-8")
    write_span(tmp_path, DAY, [_row(1)])
    assert sorted(p.name for p in folder.iterdir()) == ["_SUCCESS", "part-00000.csv"]
    assert "stale" not in (folder / "part-00000.csv").read_text(encoding="utf-8")


def test_bad_rows_leave_no_complete_span(tmp_path):
    with pytest.raises(ValueError, match="not on span day"):
        write_span(tmp_path, DAY, [_row(1), _row(2, event_time="2026-11-02T00:00:00Z")])
    with pytest.raises(ValueError, match="missing column"):
        write_span(tmp_path, DAY, [{k: v for k, v in _row(1).items() if k != "brand"}])
    folder = tmp_path / "2026-11-01"
    assert not (folder / "_SUCCESS").exists()
    assert not list(folder.glob("*.csv")) and not list(folder.glob(".*.tmp"))
    with pytest.raises(TypeError):
        write_span(tmp_path, "2026-11-01", [_row(1)])
