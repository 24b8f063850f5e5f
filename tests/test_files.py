"""atomic_path: all or nothing at the target path, with the user's usual file mode."""
import os

import pytest

from cellfie_caiman._files import atomic_path


def test_atomic_files_get_the_usual_mode(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "a.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path, exc):
    target = tmp_path / "r.txt"
    target.write_text("old")
    with pytest.raises(exc), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise exc()
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.txt"]
