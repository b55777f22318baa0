"""Help-center articles read into sections and blocks; every bad file named by file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from fpdf import FPDF

from knowledge.articles import Article, ArticleError, BlockKind, Section, read_article, read_articles

BACKUPS_MD = """\
---
title: Backing up your server
url: https://help.example.com/admin/backups/
id: backups
tags: [admin, backup]
description: Keep copies of everything.
menu:
  docs:
    weight: 10
---

Read the [configuration guide](../config#database) first, or the [Postgres manual](https://postgresql.org/docs/).

## Backing up {#backup}

Back up &gt; nightly, and *test* your backups.

### Postgres database

Run `pg_dump` every night:

```bash
pg_dump mastodon > backup.sql
```

| Setting | Meaning |
| --- | --- |
| Contact username | Your **username** |
| Business email | An [email address](mailto:admin@example.com) |

- Stop the server
- Copy the files
  - including `public/system`
- Start the server again
"""

TOML_MD = """\
+++
title = "Caring for oak"
tags = ["care", "wood"]
+++

Oil the table [every month](/care/oiling/).
"""

MDX = """\
---
title: Assembling the Marlow bookshelf
---
import { Note, Warning } from '@site/components'
export const meta = { level: 2 }

<Warning>
Tall furniture can **tip over**.
</Warning>

## Steps

Use <Tip>the Allen key</Tip> provided.

<Note>

Pins go flat side up.

</Note>

<iframe src="https://www.youtube.com/embed/xyz" title="Assembly video"></iframe>
"""

HUGO = """\
---
title: Moving or leaving accounts
---

## Exporting your information {#export}

{{< figure src="assets/export.png" width="70%" caption="The data export page in settings" >}}

{{< hint style="warning" >}}
You haven't changed anything yet.
{{</ hint >}}

{{% hint info %}}Archives can be requested once a week.{{% /hint %}}

See {{< page-ref page="admin/scaling" >}} for the [migration steps]({{< relref "install" >}}).
"""

HTML = """\
<!doctype html>
<html><head><title>Returns policy</title><style>.chrome { color: red }</style>
<script>var tracking = 1;</script></head>
<body>
<header><a href="/">Shop home</a><nav><a href="/sofas">Sofas</a></nav></header>
<div class="breadcrumb"><a href="/">Home</a> › Returns</div>
<main>
<h1>Returns</h1>
<p>You can return items within <strong>30 days</strong>. See <a href="/help/refunds">refunds</a>.</p>
<h2 id="how">How to return</h2>
<ol><li>Pack the item</li><li>Print the <em>label</em></li></ol>
<h3>Fees</h3>
<table><tr><th>Item</th><th>Fee</th></tr><tr><td>Sofa</td><td>£20</td></tr><tr><td>Chair</td><td>£5</td></tr></table>
<pre><code class="language-bash">curl -X POST /returns</code></pre>
</main>
<aside>Related: gift cards</aside>
<footer>© Shop 2024</footer>
<script>track()</script>
</body></html>
"""

TEXT = """\
Delivery times

Standard delivery takes 3-5 working days
across the mainland.

EXPRESS DELIVERY

Express orders arrive next day.

Returns
=======

- Pack it
- Send it back
"""


def write(folder: Path, relative: str, content: str | bytes) -> Path:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def section(article: Article, *headings: str) -> Section:
    return next(s for s in article.sections if s.headings == headings)


def all_text(article: Article) -> str:
    return "\n".join(block.shown for s in article.sections for block in s.blocks)


def pdf_bytes(pages: list[list[tuple[str | None, str]]], title: str = "", outline: bool = True) -> bytes:
    """A PDF whose pages hold (heading or None, paragraph) pairs; headings become outline entries."""
    pdf = FPDF()
    if title:
        pdf.set_title(title)
    pdf.set_font("helvetica", size=12)
    for page in pages:
        pdf.add_page()
        for heading, paragraph in page:
            if heading:
                level = heading.count(">")
                name = heading.split(">")[-1].strip()
                if outline:
                    pdf.start_section(name, level=level)
                pdf.cell(text=name, new_x="LMARGIN", new_y="NEXT")
                pdf.ln(4)
            pdf.multi_cell(0, 8, paragraph, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(4)
    return bytes(pdf.output())


# ---------------------------------------------------------------- Markdown
def test_yaml_front_matter_sections_and_blocks(tmp_path: Path) -> None:
    path = write(tmp_path, "admin/backups.md", BACKUPS_MD)
    article = read_article(path, tmp_path, "https://ignored.example")
    assert (article.id, article.title, article.url, article.tags) == (
        "backups", "Backing up your server", "https://help.example.com/admin/backups/", ("admin", "backup"))
    assert article.source == str(path) and len(article.content_hash) == 64

    intro = section(article)
    assert intro.blocks[0].text == "Keep copies of everything."  # the description leads
    link = intro.blocks[1]
    assert link.text == "Read the configuration guide first, or the Postgres manual."
    assert link.display == ("Read the configuration guide (https://help.example.com/admin/config#database) first, "
                            "or the Postgres manual (https://postgresql.org/docs/).")

    backing_up = section(article, "Backing up")
    assert (backing_up.anchor, backing_up.line) == ("backup", 14)
    assert [b.text for b in backing_up.blocks] == ["Back up > nightly, and test your backups."]

    postgres = section(article, "Backing up", "Postgres database")
    assert postgres.anchor == "postgres-database" and postgres.line == 18
    kinds = [b.kind for b in postgres.blocks]
    assert kinds == [BlockKind.PROSE, BlockKind.CODE, BlockKind.TABLE_ROW, BlockKind.TABLE_ROW, BlockKind.LIST]
    prose, code, row1, row2, steps = postgres.blocks
    assert prose.text == "Run pg_dump every night:" and prose.display == "Run `pg_dump` every night:"
    assert code.text == "pg_dump mastodon > backup.sql"
    assert code.display == "```bash\npg_dump mastodon > backup.sql\n```"
    assert row1.text == "Setting: Contact username; Meaning: Your username"
    assert row2.text == "Setting: Business email; Meaning: An email address"
    assert row2.display == "Setting: Business email; Meaning: An email address (mailto:admin@example.com)"
    assert steps.text == ("- Stop the server\n- Copy the files\n  - including public/system\n"
                          "- Start the server again")


def test_toml_front_matter_and_site_relative_url(tmp_path: Path) -> None:
    path = write(tmp_path, "care/oak.md", TOML_MD)
    article = read_article(path, tmp_path, "https://shop.example/help/")
    assert (article.title, article.tags, article.id) == ("Caring for oak", ("care", "wood"), "care/oak")
    assert article.url == "https://shop.example/help/care/oak"
    block = article.sections[0].blocks[0]
    assert block.text == "Oil the table every month."
    assert block.display == "Oil the table every month (https://shop.example/care/oiling/)."


def test_id_url_and_title_from_the_path_and_h1(tmp_path: Path) -> None:
    path = write(tmp_path, "guides/care/oak-table.md",
                 "# Oak table care\n\nWipe with a damp cloth.\n\n## Oiling\n\nOil it [yearly](#oiling).\n")
    article = read_article(path, tmp_path, "https://shop.example/help/")
    assert (article.id, article.title) == ("guides/care/oak-table", "Oak table care")
    assert article.url == "https://shop.example/help/guides/care/oak-table"
    # The H1 titles the article: it is no section level.
    assert [s.headings for s in article.sections] == [(), ("Oiling",)]
    assert section(article, "Oiling").blocks[0].display == (
        "Oil it yearly (https://shop.example/help/guides/care/oak-table#oiling).")

    untitled = read_article(write(tmp_path, "wash_and-dry.md", "Wash cold. See [care](/care).\n"), tmp_path)
    assert (untitled.title, untitled.url) == ("Wash and dry", "")
    assert untitled.sections[0].blocks[0].shown == "Wash cold. See care."  # no url: no link target


def test_mdx_components_and_statements_lose_their_markup(tmp_path: Path) -> None:
    article = read_article(write(tmp_path, "marlow.mdx", MDX), tmp_path)
    texts = [b.text for s in article.sections for b in s.blocks]
    assert texts == ["Tall furniture can tip over.", "Use the Allen key provided.", "Pins go flat side up."]
    assert section(article, "Steps").line == 11
    assert "import" not in all_text(article) and "<" not in all_text(article)


def test_hugo_shortcodes_keep_their_text(tmp_path: Path) -> None:
    article = read_article(write(tmp_path, "user/moving.md", HUGO), tmp_path, "https://docs.example.org")
    export = section(article, "Exporting your information")
    assert export.anchor == "export"
    assert [b.text for b in export.blocks] == [
        "The data export page in settings", "You haven't changed anything yet.",
        "Archives can be requested once a week.", "See for the migration steps."]
    assert export.blocks[-1].display == "See for the migration steps (https://docs.example.org/user/install)."
    assert "{{" not in all_text(article) and "{#" not in all_text(article)


# ---------------------------------------------------------------- HTML, text, PDF
def test_html_drops_chrome_and_keeps_structure(tmp_path: Path) -> None:
    article = read_article(write(tmp_path, "returns.html", HTML), tmp_path, "https://shop.example")
    assert (article.title, article.url) == ("Returns policy", "https://shop.example/returns")
    assert [s.headings for s in article.sections] == [(), ("How to return",), ("How to return", "Fees")]
    intro = article.sections[0].blocks[0]
    assert intro.text == "You can return items within 30 days. See refunds."
    assert intro.display == "You can return items within 30 days. See refunds (https://shop.example/help/refunds)."
    how = section(article, "How to return")
    assert (how.anchor, how.blocks[0].kind, how.blocks[0].text) == ("how", BlockKind.LIST,
                                                                    "1. Pack the item\n2. Print the label")
    fees = section(article, "How to return", "Fees")
    assert [(b.kind, b.text) for b in fees.blocks] == [
        (BlockKind.TABLE_ROW, "Item: Sofa; Fee: £20"), (BlockKind.TABLE_ROW, "Item: Chair; Fee: £5"),
        (BlockKind.CODE, "curl -X POST /returns")]
    assert fees.blocks[-1].display == "```bash\ncurl -X POST /returns\n```"
    text = all_text(article)
    for chrome in ("Shop home", "Sofas", "Home", "tracking", "track()", "chrome", "Related", "©"):
        assert chrome not in text


def test_html_title_from_h1_and_declared_charset(tmp_path: Path) -> None:
    page = '<html><head><meta charset="windows-1252"></head><body><h1>Caf\xe9 tables</h1><p>Wipe them.</p>'
    article = read_article(write(tmp_path, "cafe.htm", page.encode("cp1252")), tmp_path)
    assert article.title == "Café tables"
    assert [(s.headings, [b.text for b in s.blocks]) for s in article.sections] == [((), ["Wipe them."])]


def test_plain_text(tmp_path: Path) -> None:
    article = read_article(write(tmp_path, "delivery.txt", TEXT), tmp_path)
    assert article.title == "Delivery times"
    assert [(s.headings, s.line, [(b.kind, b.text) for b in s.blocks]) for s in article.sections] == [
        ((), 3, [(BlockKind.PROSE, "Standard delivery takes 3-5 working days across the mainland.")]),
        (("EXPRESS DELIVERY",), 6, [(BlockKind.PROSE, "Express orders arrive next day.")]),
        (("Returns",), 10, [(BlockKind.LIST, "- Pack it\n- Send it back")]),
    ]


def test_pdf_with_an_outline_gives_headings(tmp_path: Path) -> None:
    raw = pdf_bytes([[("Cleaning", "Dust with a soft cloth."), ("Cleaning > Stains", "Wipe spills at once.")],
                     [(None, "Never use bleach."), ("Oiling", "Oil the table every six months.")]],
                    title="Oak care guide")
    article = read_article(write(tmp_path, "manuals/oak.pdf", raw), tmp_path)
    assert (article.title, article.id) == ("Oak care guide", "manuals/oak")
    assert [(s.headings, s.line, s.anchor, [b.text for b in s.blocks]) for s in article.sections] == [
        (("Cleaning",), 1, "page=1", ["Dust with a soft cloth."]),
        (("Cleaning", "Stains"), 1, "page=1", ["Wipe spills at once."]),
        (("Cleaning", "Stains"), 2, "page=2", ["Never use bleach."]),
        (("Oiling",), 2, "page=2", ["Oil the table every six months."]),
    ]


def test_pdf_without_an_outline_gives_pages(tmp_path: Path) -> None:
    raw = pdf_bytes([[(None, "Sofa care manual")], [(None, "Vacuum the cushions weekly.")]], outline=False)
    article = read_article(write(tmp_path, "sofa.pdf", raw), tmp_path)
    assert article.title == "Sofa care manual"
    assert [(s.headings, s.line, [b.text for b in s.blocks]) for s in article.sections] == [
        (("Page 1",), 1, ["Sofa care manual"]), (("Page 2",), 2, ["Vacuum the cushions weekly."])]


# ---------------------------------------------------------------- problems
def test_every_bad_file_is_named_with_its_line(tmp_path: Path) -> None:
    folder = tmp_path / "articles"
    write(folder, "good.md", "# Good\n\nFine text.\n")
    write(folder, "latin1.md", b"# Title\n\nok line\ncaf\xe9 bad\n")
    write(folder, "bad-yaml.md", "---\ntitle: Fine\n  bad indent: x\n---\n\nBody\n")
    write(folder, "bad-toml.md", '+++\ntitle = "x"\ntags = ["a" "b"]\n+++\nBody\n')
    write(folder, "binary.md", b"looks like\ntext\x00\x01\x02")
    write(folder, "empty.md", "---\ntitle: Nothing here\n---\n\n<!-- todo -->\n")
    write(folder, "broken.pdf", bytes(range(256)) * 8)
    write(folder, "notes.docx", b"PK\x03\x04")
    write(folder, "a/shared.md", "---\nid: shared\n---\nFirst.\n")
    write(folder, "b/shared.md", "---\nid: shared\n---\nSecond.\n")
    write(folder, "images/export.png", b"\x89PNG\r\n")  # assets and hidden files are skipped quietly
    write(folder, "LICENSE", "MIT")
    write(folder, ".drafts/secret.md", "# Draft\n\nNot yet.\n")

    articles, problems = read_articles(folder)
    assert [a.id for a in articles] == ["shared", "good"]
    assert articles[0].source == str(folder / "a/shared.md")
    found = {Path(p.source).relative_to(folder).as_posix(): (p.line, p.message) for p in problems}
    assert found["latin1.md"] == (4, "file is not valid UTF-8")
    assert found["bad-yaml.md"] == (3, "invalid YAML front matter: mapping values are not allowed here")
    assert found["bad-toml.md"] == (3, "invalid TOML front matter: Unclosed array")
    assert found["binary.md"] == (2, "file holds NUL bytes: binary data, not text")
    assert found["empty.md"] == (1, "article has no text")
    assert found["broken.pdf"][0] == 0 and found["broken.pdf"][1].startswith("cannot read PDF: ")
    assert found["notes.docx"] == (0, "unsupported article type '.docx'")
    assert found["b/shared.md"] == (1, f"duplicate article id 'shared': {folder / 'a/shared.md'} has it too")
    assert len(problems) == len(found) == 8
    assert str(problems[0]).startswith(f"{problems[0].source}:{problems[0].line}: ")


def test_read_article_raises_with_the_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.pdf", b"%PDF-1.4\nnot really a pdf")
    with pytest.raises(ArticleError) as caught:
        read_article(path, tmp_path)
    assert isinstance(caught.value, ValueError)
    [problem] = caught.value.problems
    assert (problem.source, problem.line) == (str(path), 0) and problem.message.startswith("cannot read PDF: ")


def test_a_reread_reuses_unchanged_articles(tmp_path: Path) -> None:
    for name in ("one", "two", "three"):
        write(tmp_path, f"{name}.md", f"# {name.title()}\n\nAbout {name}.\n")
    first, problems = read_articles(tmp_path, "https://help.example")
    assert not problems and [a.id for a in first] == ["one", "three", "two"]

    write(tmp_path, "two.md", "# Two\n\nAbout two, revised.\n")
    second, problems = read_articles(tmp_path, "https://help.example", {a.source: a for a in first})
    assert not problems
    assert second[0] is first[0] and second[1] is first[1]  # unchanged bytes: the same object, unparsed
    assert second[2] is not first[2] and second[2].sections[0].blocks[0].text == "About two, revised."
    assert second[2].content_hash != first[2].content_hash
