"""Clip labels from real datasets: one fixed label, a pattern on the file name, a key of a
JSON sidecar file (with an optional label list), or a CSV mapping.

Why: a DeepMimic clip has no label field -- the dataset reader takes the label from the file
name (``<label>__<name>.txt``), and the conditional generator trains on those labels. Real
datasets carry labels in their own ways: Bandai Namco puts the content in the file name
(``dataset-1_walk_normal_001.bvh``) and, as an index into ``cfg/content_label.txt``, in a
sidecar ``dataset-1_walk_normal_001.json``; others ship a CSV. Every source that cannot be
labelled by the chosen rule is an error naming the file: a wrong label is silent garbage.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sccl.motion.errors import UserError


def clean_label(label: str, where: str) -> str:
    """A label usable as a file-name prefix: ``[A-Za-z0-9_.-]`` with no ``__`` (the separator)."""
    out = re.sub(r"_{2,}", "_", re.sub(r"[^A-Za-z0-9_.-]+", "_", str(label).strip())).strip("_")
    if not out:
        raise UserError(f"{where}: empty label {label!r}")
    return out


def read_label_list(path: str | os.PathLike) -> list[str]:
    """One label per line (blank lines skipped), e.g. Bandai Namco's ``cfg/content_label.txt``."""
    try:
        return [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip()]
    except OSError as exc:
        raise UserError(f"{path}: cannot read label list: {exc.strerror or exc}") from None


def read_label_csv(path: str | os.PathLike) -> dict[str, str]:
    """A CSV with a header holding ``file`` and ``label`` columns. ``file`` is matched against a
    source's path under SRC, its file name, or its stem."""
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise UserError(f"{path}: cannot read label CSV: {exc.strerror or exc}") from None
    if not rows or not {"file", "label"} <= set(rows[0]):
        raise UserError(f"{path}: the label CSV needs a header with 'file' and 'label' columns")
    out: dict[str, str] = {}
    for i, row in enumerate(rows, 2):
        f, lab = (row.get("file") or "").strip(), (row.get("label") or "").strip()
        if not f or not lab:
            raise UserError(f"{path}:{i}: empty file or label")
        out[f] = lab
    return out


@dataclass(frozen=True)
class LabelRule:
    """How each source file gets its label (at most one of the options; none: no label)."""

    label: str | None = None
    regex: str | None = None
    sidecar_key: str | None = None
    label_list: str | None = None
    csv_path: str | None = None

    def labeler(self, src_root: Path) -> Callable[[Path], str | None]:
        """A function source path -> label (or None: the clip is named after its path)."""
        chosen = [n for n, v in (("--label", self.label), ("--label-regex", self.regex),
                                 ("--label-sidecar", self.sidecar_key), ("--label-csv", self.csv_path)) if v]
        if len(chosen) > 1:
            raise UserError(f"choose one way of labelling, not {' and '.join(chosen)}")
        if self.label_list and not self.sidecar_key:
            raise UserError("--label-list goes with --label-sidecar KEY")
        if self.label:
            fixed = clean_label(self.label, "--label")
            return lambda path: fixed
        if self.regex:
            try:
                pattern = re.compile(self.regex)
            except re.error as exc:
                raise UserError(f"--label-regex: invalid pattern {self.regex!r}: {exc}") from None

            def by_regex(path: Path) -> str:
                m = pattern.search(path.name)
                if m is None:
                    raise UserError(f"{path}: --label-regex {self.regex!r} does not match the file name")
                group = m.groupdict().get("label") if "label" in pattern.groupindex else (m.group(1) if pattern.groups else m.group(0))
                if group is None:
                    raise UserError(f"{path}: --label-regex matched but its label group is empty")
                return clean_label(group, str(path))

            return by_regex
        if self.sidecar_key:
            names = read_label_list(self.label_list) if self.label_list else None
            key = self.sidecar_key

            def by_sidecar(path: Path) -> str:
                side = path.with_suffix(".json")
                try:
                    data = json.loads(side.read_text())
                except OSError as exc:
                    raise UserError(f"{side}: cannot read the label sidecar: {exc.strerror or exc}") from None
                except json.JSONDecodeError as exc:
                    raise UserError(f"{side}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
                if not isinstance(data, dict) or key not in data:
                    raise UserError(f"{side}: no key {key!r} (--label-sidecar)")
                value = data[key]
                if isinstance(value, bool) or not isinstance(value, (int, str)):
                    raise UserError(f"{side}: {key} must be a label or an index, got {value!r}")
                if isinstance(value, int):
                    if names is None:
                        raise UserError(f"{side}: {key} is an index ({value}); pass --label-list FILE")
                    if not 0 <= value < len(names):
                        raise UserError(f"{side}: {key}={value} is outside the label list ({len(names)} labels)")
                    value = names[value]
                return clean_label(value, str(side))

            return by_sidecar
        if self.csv_path:
            table = read_label_csv(self.csv_path)

            def by_csv(path: Path) -> str:
                rel = path.relative_to(src_root).as_posix() if src_root.is_dir() else path.name
                for k in (rel, path.name, path.stem):
                    if k in table:
                        return clean_label(table[k], f"{self.csv_path}: {k}")
                raise UserError(f"{path}: not in the label CSV {self.csv_path}")

            return by_csv
        return lambda path: None
