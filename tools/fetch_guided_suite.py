"""Fetch the JSON-Schema-Test-Suite's draft-7 files from the installed jsonschema's sdist.

The suite ships inside the ``jsonschema`` source distribution (``json/tests/draft7/``).  This
script reads the package index's simple page for ``jsonschema`` (PEP 503; ``PIP_INDEX_URL`` or
https://pypi.org/simple), downloads the sdist of the installed version, checks its sha256 when
the index gives one, and unpacks the draft-7 folder into ``DEST/draft7`` (atomically: a folder
is renamed into place).  Unlike ``pip download --no-binary :all:``, it builds nothing, so it
takes seconds.  Used by ``make guided-suite``; without the suite the conformance test
(tests/lm/test_guided_conformance.py) falls back to a built-in subset and says so.

    python tools/fetch_guided_suite.py .cache/jsonschema-suite
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import os
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

TIMEOUT_S = 60
MEMBER = re.compile(r"^[^/]+/json/tests/draft7/(.+)$")


def sdist_url(index: str, version: str) -> tuple[str, str | None]:
    """The URL of ``jsonschema-<version>.tar.gz`` on ``index`` and its sha256 (or None)."""
    page = f"{index.rstrip('/')}/jsonschema/"
    with urllib.request.urlopen(page, timeout=TIMEOUT_S) as response:
        html = response.read().decode()
    name = re.escape(f"jsonschema-{version}.tar.gz")
    found = re.search(rf'href="([^"]*{name})(?:#sha256=([0-9a-f]{{64}}))?"', html)
    if found is None:
        raise SystemExit(f"no jsonschema-{version}.tar.gz on {page}")
    return urllib.request.urljoin(page, found.group(1)), found.group(2)


def fetch(dest: Path) -> Path:
    """Download and unpack the draft-7 suite into ``dest/draft7``; returns that folder."""
    version = importlib.metadata.version("jsonschema")
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple")
    url, sha = sdist_url(index, version)
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
        data = response.read()
    if sha is not None and hashlib.sha256(data).hexdigest() != sha:
        raise SystemExit(f"sha256 of {url} does not match the index's {sha}")
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest, prefix=".draft7-"))
    n = 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            inside = MEMBER.match(member.name)
            if not member.isfile() or inside is None or ".." in Path(inside.group(1)).parts:
                continue
            target = staging / inside.group(1)
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None  # a regular file
            target.write_bytes(source.read())
            n += 1
    if not (staging / "type.json").is_file():
        shutil.rmtree(staging)
        raise SystemExit(f"{url} holds no json/tests/draft7/type.json")
    final = dest / "draft7"
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)
    print(f"draft-7 suite of jsonschema {version}: {n} files in {final}")
    return final


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python tools/fetch_guided_suite.py DEST")
    fetch(Path(sys.argv[1]))
