"""The shipped ct.js is the build of snippet/src, within its size budget and its manners."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from clickthru.collector.snippet import snippet_source

SNIPPET = Path(__file__).parents[2] / "snippet"
# Bytes, minified and gzipped. The goal is 1,536; the rework that lets every click leave from
# its own page and judges collectors only on what living pages saw needs more, up to this cap
# (the README's "Embed the snippet" says what the extra bytes buy).
BUDGET = 1664
# The conversion reader, loaded only on order confirmation pages: ct.js has no room for it.
CONVERSION_BUDGET = 512


def test_the_shipped_file_is_the_build_of_its_source() -> None:
    if not (SNIPPET / "node_modules" / ".bin" / "esbuild").exists():
        pytest.fail("the snippet's build tools are missing: npm ci --prefix snippet")
    npm = shutil.which("npm")
    assert npm is not None, "npm is needed to rebuild the snippet"
    built = subprocess.run(
        [npm, "run", "--silent", "bundle"], cwd=SNIPPET, capture_output=True, check=True
    ).stdout
    assert built == snippet_source(), "ct.js is stale: run `npm run build --prefix snippet`"
    reader = subprocess.run(
        [npm, "run", "--silent", "bundle-conversion"], cwd=SNIPPET, capture_output=True, check=True
    ).stdout
    assert reader == snippet_source("ctc.js"), (
        "ctc.js is stale: run `npm run build --prefix snippet`"
    )


def test_it_fits_the_size_budget() -> None:
    size = len(gzip.compress(snippet_source(), compresslevel=9))
    assert size <= BUDGET, f"ct.js is {size} B gzipped, over the {BUDGET} B budget"


def test_the_conversion_reader_fits_its_own_budget() -> None:
    size = len(gzip.compress(snippet_source("ctc.js"), compresslevel=9))
    assert size <= CONVERSION_BUDGET, f"ctc.js is {size} B gzipped, over {CONVERSION_BUDGET} B"


@pytest.mark.parametrize(
    "forbidden",
    [
        r"preventDefault",  # the visitor's navigation is never held
        r"\.href\s*=|setAttribute\(\s*\"(href|target)",  # nor redirected
        r"location\s*=|location\.(assign|replace)",
        r"[\"']unload|beforeunload",  # these keep pages out of the back-forward cache
        r"XMLHttpRequest",  # the only way to send synchronously
        r"cookie",
        r"\bwindow\.\w+\s*=",  # no globals
    ],
)
def test_it_never_touches_navigation_or_the_page(forbidden: str) -> None:
    sources = [snippet_source().decode(), snippet_source("ctc.js").decode()]
    sources += [path.read_text() for path in sorted((SNIPPET / "src").glob("*.js"))]
    for source in sources:
        code = re.sub(r"//.*", "", source)  # comments may name what the code never does
        assert not re.search(forbidden, code)
