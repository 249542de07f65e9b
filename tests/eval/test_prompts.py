"""Prompt files for ``eval --prompts`` (noisebrush.eval.prompts): the format read back, and every bad file refused in
one line that names the file and the line."""
import pytest

from noisebrush.errors import BadParameter, UserError
from noisebrush.eval.prompts import (MAX_PROMPTS, PARAPHRASES, PromptItem, as_items, format_prompts, parse_prompts,
                                     read_prompts)

GOOD = ("prompt\tattributes\n"
        "a wee scarlet orb, leftmost\tfamily=shapes; colour=red;shape=circle;position=left;count=one\n"
        "\n"
        "sundown over plum summits\r\tFamily=Landscape;sky=sunset;ground=mountains;colour2=purple;\n")


def test_reads_the_format_and_writes_it_back(tmp_path):
    items = parse_prompts(GOOD, source="p.tsv")
    assert [it.prompt for it in items] == ["a wee scarlet orb, leftmost", "sundown over plum summits"]
    assert items[0].attributes == {"family": "shapes", "colour": "red", "shape": "circle", "position": "left",
                                   "count": "one"}
    assert items[1].attributes == {"family": "landscape", "colour2": "purple", "sky": "sunset", "ground": "mountains"}
    assert [it.line for it in items] == [2, 4]
    # the row a Scene would give: -1 where the prompt names nothing
    assert items[1].attr_indices() == (2, -1, 6, -1, -1, -1, -1, 1, 0)
    path = tmp_path / "again.tsv"
    path.write_text(format_prompts(items), encoding="utf-8")
    again = read_prompts(path)
    assert [(it.prompt, dict(it.attributes)) for it in again] == [(it.prompt, dict(it.attributes)) for it in items]
    # a byte-order mark and CRLF line ends, as some editors write them; aliases people type
    path.write_bytes(b"\xef\xbb\xbfprompt\tattributes\r\na red ball\tcolor=red;position=center;count=3\r\n")
    (item,) = read_prompts(path)
    assert item.attributes == {"colour": "red", "position": "centre", "count": "three"} and item.line == 2


@pytest.mark.parametrize("text, fragment", [
    ("", "p.tsv: empty"),
    ("prompt,attributes\na\tb=c\n", "p.tsv line 1: the header must be 'prompt<TAB>attributes'"),
    ("prompt\tattributes\n", "p.tsv: no prompts after the header line"),
    ("prompt\tattributes\na red ball family=shapes\n", "p.tsv line 2: no tab between the prompt and its attributes"),
    ("prompt\tattributes\na\tfamily=shapes\tx\n", "p.tsv line 2: 2 tabs"),
    ("prompt\tattributes\n  \tfamily=shapes\n", "p.tsv line 2: empty prompt"),
    ("prompt\tattributes\nok\tfamily=shapes\n\nbad\t\n", "p.tsv line 4: no attributes, so nothing to score"),
    ("prompt\tattributes\nbad\tcolr=red\n", "p.tsv line 2: unknown attribute 'colr' (one of family, colour,"),
    ("prompt\tattributes\nbad\tcolour=cherry\n", "p.tsv line 2: colour='cherry': not a value of colour (one of red,"),
    ("prompt\tattributes\nbad\tcount=7\n", "p.tsv line 2: count='7': not a value of count"),
    ("prompt\tattributes\nbad\tcolour red\n", "p.tsv line 2: 'colour red' is not key=value"),
    ("prompt\tattributes\nbad\tcolour=red;colour=blue\n", "p.tsv line 2: colour given twice"),
    ("prompt\tattributes\n" + "x" * 1001 + "\tcolour=red\n", "p.tsv line 2: a prompt of 1001 characters; at most 1000"),
])
def test_bad_text_is_one_line_naming_file_and_line(text, fragment):
    with pytest.raises(UserError) as e:
        parse_prompts(text, source="p.tsv")
    msg = str(e.value)
    assert msg.startswith(fragment), msg
    assert "\n" not in msg


def test_bad_files(tmp_path):
    def error(path):
        with pytest.raises(UserError) as e:
            read_prompts(path)
        assert "\n" not in str(e.value)
        return str(e.value)

    assert error(tmp_path / "none.tsv") == f"{tmp_path / 'none.tsv'}: no such prompt file (--prompts)"
    assert error(tmp_path) == f"{tmp_path}: a folder, not a prompt file (--prompts)"
    latin = tmp_path / "latin.tsv"
    latin.write_bytes("prompt\tattributes\na red ball\tcolour=red\na cr\xe8me ball\tcolour=white\n".encode("latin-1"))
    assert error(latin) == f"{latin} line 3: not UTF-8 text (byte 0xe8); save the file as UTF-8"
    many = tmp_path / "many.tsv"
    many.write_text("prompt\tattributes\n" + "a red ball\tcolour=red\n" * (MAX_PROMPTS + 1), encoding="utf-8")
    assert error(many) == f"{many} line {MAX_PROMPTS + 2}: more than {MAX_PROMPTS} prompts; split the file"
    exactly = tmp_path / "exactly.tsv"
    exactly.write_text("prompt\tattributes\n" + "a red ball\tcolour=red\n" * MAX_PROMPTS, encoding="utf-8")
    assert len(read_prompts(exactly)) == MAX_PROMPTS
    huge = tmp_path / "huge.tsv"
    with open(huge, "wb") as f:  # sparse: the size is refused before anything is read
        f.truncate(17 * 1024 * 1024)
    assert error(huge).endswith("a prompt file may hold at most 16 MiB (--prompts)")


def test_lists_of_pairs_are_checked_like_files():
    items = as_items([("a red ball", {"family": "shapes", "colour": "red"}), ("rings", "family=rings"),
                      PromptItem("a swirl", {"family": "swirl"}, 7)])
    assert [it.attributes for it in items] == [{"family": "shapes", "colour": "red"}, {"family": "rings"},
                                               {"family": "swirl"}]
    assert items[2].line == 7
    for bad, fragment in [(["a red ball"], "prompts[0]: a (prompt, attributes) pair"),
                          ([("", "colour=red")], "prompts[0]: a prompt is one line of text"),
                          ([("ok", "colour=red"), ("bad", {"colour": "crimson"})], "prompts[1]: colour='crimson'"),
                          ([("ok", 3)], "prompts[0]: attributes as a dict"),
                          ([], "prompts: an empty list"),
                          ([("a", "colour=red")] * (MAX_PROMPTS + 1), f"prompts: {MAX_PROMPTS + 1} prompts; at most"),
                          (42, "prompts: a prompt file or a list")]:
        with pytest.raises(BadParameter) as e:
            as_items(bad)
        assert str(e.value).startswith(fragment), (str(e.value), fragment)


def test_the_shipped_set_is_in_the_package():
    """pyproject's package-data lists it, so an installed noisebrush has it next to this module."""
    import tomllib
    from pathlib import Path

    assert PARAPHRASES.is_file() and PARAPHRASES.parent.name == "eval"
    root = Path(__file__).resolve().parents[2]
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["noisebrush"]
    assert any(Path("eval", PARAPHRASES.name).match(pattern) for pattern in data), data


def test_any_text_is_rows_or_one_error_line():
    """Fuzz (as tests/test_fuzz_parsers.py does for every parser of outside input): arbitrary text, and real files
    with arbitrary cells, give rows or one UserError line, never another exception."""
    from hypothesis import HealthCheck, given, settings, strategies as st

    text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)
    cell = st.one_of(text, st.sampled_from(["family=shapes", "colour=red;count=3", "size=large; ;", "=", ";;"]))
    row = st.tuples(cell, cell).map(lambda c: "\t".join(c))
    files = st.one_of(text, st.lists(row, max_size=5).map(lambda rows: "prompt\tattributes\n" + "\n".join(rows)))

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None,
              derandomize=True)
    @given(files)
    def check(doc):
        try:
            items = parse_prompts(doc, source="f.tsv")
        except UserError as e:
            assert "\n" not in str(e) and str(e).startswith("f.tsv")
            return
        assert items and all(it.prompt and it.attributes and "\t" not in it.prompt for it in items)
        assert [(it.prompt, dict(it.attributes)) for it in parse_prompts(format_prompts(items))] == \
            [(it.prompt, dict(it.attributes)) for it in items]

    check()
