"""Files written whole: a reader sees the old content or the new one."""

from __future__ import annotations

from kernel.files import write_text_atomic


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
