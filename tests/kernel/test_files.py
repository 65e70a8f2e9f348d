"""Files written whole: a reader sees the old content or the new one, and notices when it changed."""

from __future__ import annotations

import os

from kernel.files import FileChange, WatchedNumber, write_text_atomic


def test_a_file_is_replaced_whole_and_its_folder_made(tmp_path):
    path = tmp_path / "state" / "processes.json"
    assert write_text_atomic(path, '{"a": 1}') == path and path.read_text() == '{"a": 1}'
    write_text_atomic(path, '{"a": 2}')
    assert path.read_text() == '{"a": 2}'
    assert sorted(p.name for p in path.parent.iterdir()) == ["processes.json"]  # no temporary left behind


def test_writers_in_two_threads_and_a_reader_never_meet_half_a_file(tmp_path):
    """The chaos control API rewrites ``chaos.json`` from two threads while probes read it."""
    import json
    import threading

    path = tmp_path / "chaos.json"
    write_text_atomic(path, json.dumps({"n": -1}))
    errors: list[BaseException] = []

    def write(offset: int) -> None:
        try:
            for n in range(300):
                write_text_atomic(path, json.dumps({"n": offset + n, "pad": "x" * 2000}))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(k * 1000,)) for k in range(2)]
    for w in writers:
        w.start()
    reads = 0
    while any(w.is_alive() for w in writers) or not reads:
        assert "n" in json.loads(path.read_text())
        reads += 1
    for w in writers:
        w.join()
    assert not errors, errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chaos.json"]


def test_a_change_is_a_new_file_even_with_the_same_mtime_and_size(tmp_path):
    path = tmp_path / "fault.json"
    watch = FileChange(path)
    assert watch.changed()  # the first look always reports
    assert not watch.changed()
    write_text_atomic(path, '{"v": 1}')
    assert watch.changed() and not watch.changed()
    stamp = path.stat().st_mtime_ns
    write_text_atomic(path, '{"v": 2}')  # same size; force the same mtime: only the inode tells it apart
    os.utime(path, ns=(stamp, stamp))
    assert watch.changed()
    path.unlink()
    assert watch.changed() and not watch.changed()


def test_a_throttled_watch_looks_again_only_after_its_recheck(tmp_path):
    path = tmp_path / "skew.json"
    watch = FileChange(path, recheck_s=3600.0)
    assert watch.changed()
    write_text_atomic(path, "{}")
    assert not watch.changed()  # within the recheck: not looked at
    watch.recheck_s = 0.0
    watch._next_look = 0.0
    assert watch.changed()


def test_a_watched_number_follows_the_file_and_names_an_unreadable_one_once(tmp_path, capsys):
    path = tmp_path / "ack_loss.json"
    share = WatchedNumber(path, "ack_loss", 0.0, reader="worker")
    assert share.get() == 0.0
    write_text_atomic(path, '{"ack_loss": 0.25}')
    assert share.get() == 0.25
    write_text_atomic(path, '{"ack_los": 0.5}')
    assert share.get() == 0.0 and share.get() == 0.0
    assert capsys.readouterr().err.count("worker: ignoring") == 1
    path.unlink()
    assert share.get() == 0.0
