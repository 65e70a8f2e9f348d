"""Files written whole: a reader sees the old content or the new one."""

from __future__ import annotations

from kernel.files import write_text_atomic


def test_a_file_is_replaced_whole_and_its_folder_made(tmp_path):
    path = tmp_path / "state" / "processes.json"
    assert write_text_atomic(path, '{"a": 1}') == path and path.read_text() == '{"a": 1}'
    write_text_atomic(path, '{"a": 2}')
    assert path.read_text() == '{"a": 2}'
    assert sorted(p.name for p in path.parent.iterdir()) == ["processes.json"]  # no temporary left behind
