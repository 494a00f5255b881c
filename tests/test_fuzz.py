"""No broken input crashes `mcc prepare` or slips into a dataset.

Every case of the seeded corpus in tests/fuzz_corpus.py (broken files mixed with the sample
files: the real sample data, MCC_SHARED_DATA, or the generated stand-in of
tests/raw_formats.py) is imported with the CLI; see that module for what is checked.
`python tests/fuzz_corpus.py` runs the same corpus and prints tried / handled / failed.
"""

from __future__ import annotations

import pytest
from conftest import DATA
from fuzz_corpus import CASES, FORMATS, run_case, use_data

use_data(DATA)

SEED = 0


def test_the_corpus_covers_every_format_and_the_issue_cases():
    names = {c.name for c in CASES}
    assert len(names) == len(CASES) and {c.fmt for c in CASES} == set(FORMATS)
    reported = [  # the 22 reported inputs, by the damage they carry
        "ntu/coordinate-1e39", "ntu/coordinate-minus-1e39", "ntu/frame-count-underscore",
        "ntu/body-count-bomb", "ntu/line-ends-crlf-converted-twice", "ntu/special-fifo",
        "kinetics/pose-1e39", "pkummd/row-past-the-end", "pkummd/row-huge-end-frame",
        "pkummd/row-label-underscore", "pkummd/row-confidence-nan", "npz/label-99",
        "npz/label-float-2.5", "npz/label-nan", "npz/labels-strings", "npz/label-huge-2**62",
        "npz/empty-arrays", "npz/duplicate-sample-ids", "npz/truncated", "npz/bit-flip-stored",
        "npz/zip-bomb-joints-header", "npz/zip-bomb-labels-header",
    ]  # fmt: skip
    assert not set(reported) - names


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_broken_input_is_rejected_with_a_reason(case):
    problems = run_case(case, SEED)
    assert not problems, "\n".join(problems)
