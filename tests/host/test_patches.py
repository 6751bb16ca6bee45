"""The patch series of ports/manticore/patches on a fresh copy of the pinned tree."""

import pytest

from manticore_host import fetch

pytestmark = pytest.mark.timeout(120)


def _tree(root, text="one\ntwo\nthree\n"):
    (root / "src").mkdir(parents=True)
    (root / "src" / "f.txt").write_text(text)
    return root


def _diff(old, new):
    import difflib
    lines = difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                 "a/src/f.txt", "b/src/f.txt")
    return "".join(lines)


def test_series_applies_to_a_fresh_copy_of_the_pinned_tree(tmp_path):
    source = fetch.micropython_dir(quiet=True)
    series = fetch.patch_series("micropython")
    assert [p.name for p in series][:1] == ["0001-modlwip-udp-incoming-queue.patch"]
    for patch in series:    # each opens with what, why and the upstream state
        head = patch.read_text().split("\n--- ", 1)[0]
        assert "Why:" in head and "Upstream:" in head, patch.name
    pristine = (source / "extmod" / "modlwip.c").read_text()
    tree = fetch.patched_tree(source, series, dest_root=tmp_path, quiet=True)
    assert tree != source and tree.parent == tmp_path
    assert fetch.series_digest(source, series) in tree.name
    patched = (tree / "extmod" / "modlwip.c").read_text()
    assert "lwip_incoming_push" in patched
    assert "MICROPY_PY_LWIP_INCOMING_QUEUE_LEN" in patched
    # the cached tree is untouched; the record names every patch with its hash
    assert (source / "extmod" / "modlwip.c").read_text() == pristine
    assert "lwip_incoming_push" not in pristine
    record = (tree / fetch.PATCH_STAMP).read_text().splitlines()
    assert [line.split()[1] for line in record] == [p.name for p in series]
    assert all(line.split()[0] == fetch.sha256_of(p) for line, p in zip(record, series))
    # a second call reuses it
    assert fetch.patched_tree(source, series, dest_root=tmp_path, quiet=True) == tree


def test_patches_apply_in_name_order(tmp_path):
    source = _tree(tmp_path / "pkg-1.0")
    patches = tmp_path / "patches"
    patches.mkdir()
    (patches / "0002-b.patch").write_text(
        "second\n\n" + _diff("one\nTWO\nthree\n", "one\nTWO\nTHREE\n"))
    (patches / "0001-a.patch").write_text(
        "first\n\n" + _diff("one\ntwo\nthree\n", "one\nTWO\nthree\n"))
    series = fetch.patch_series("x", patches)
    assert [p.name for p in series] == ["0001-a.patch", "0002-b.patch"]
    tree = fetch.patched_tree(source, series, dest_root=tmp_path / "out", quiet=True)
    assert (tree / "src" / "f.txt").read_text() == "one\nTWO\nTHREE\n"
    assert (source / "src" / "f.txt").read_text() == "one\ntwo\nthree\n"
    assert fetch.patched_tree(source, [], dest_root=tmp_path / "out") == source


def test_a_patch_that_does_not_apply_cleanly_is_refused(tmp_path):
    source = _tree(tmp_path / "pkg-1.0", "one\ntwo\nthree changed\n")
    patches = tmp_path / "patches"
    patches.mkdir()
    (patches / "0001-a.patch").write_text(
        _diff("one\ntwo\nthree\n", "one\nTWO\nthree\n"))      # context differs: no fuzz
    out = tmp_path / "out"
    with pytest.raises(fetch.FetchError, match="0001-a.patch does not apply cleanly"):
        fetch.patched_tree(source, fetch.patch_series("x", patches), dest_root=out,
                           quiet=True)
    assert [p.name for p in out.iterdir()] == []               # nothing half-made
    assert (source / "src" / "f.txt").read_text() == "one\ntwo\nthree changed\n"
