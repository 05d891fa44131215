"""Bad training text is named (dataset and file) before `datasets` fails inside."""

from __future__ import annotations

import pytest

from paretolm.data import DatasetSpec, load_split


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (b"   \n\n", "is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is not a text file"),
        (b"caf\xe9 au lait\n" * 3, "is not UTF-8 text"),
    ],
)
def test_bad_text_files_name_dataset_and_file(tmp_path, content: bytes, message: str) -> None:
    path = tmp_path / "train.txt"
    path.write_bytes(content)
    spec = DatasetSpec.from_config("mine", {"files": {"train": str(path)}})
    with pytest.raises(ValueError, match=rf"^datasets\.mine\.files\.train: {path} {message}"):
        load_split(spec, "train")
    single = DatasetSpec.from_config("mine", {"files": str(path), "split": {"train": 0.5, "validation": 0.5}})
    with pytest.raises(ValueError, match=rf"^datasets\.mine\.files: {path} {message}"):
        load_split(single, "train")


def test_missing_file_and_too_short_split(tmp_path) -> None:
    spec = DatasetSpec.from_config("mine", {"files": {"train": str(tmp_path / "nope.txt")}})
    with pytest.raises(FileNotFoundError, match=r"^datasets\.mine\.files\.train: no file at"):
        load_split(spec, "train")
    one_line = tmp_path / "one.txt"
    one_line.write_text("just one line\n")
    single = DatasetSpec.from_config("mine", {"files": str(one_line), "split": {"train": 0.9, "validation": 0.1}})
    with pytest.raises(ValueError, match=r"^datasets\.mine\.split\.validation: .* has 1 lines"):
        load_split(single, "validation")
    assert len(load_split(single, "train")) == 1
