"""The report as a list of blocks, rendered to Markdown and to one self-contained HTML file.

The report is built once as blocks (headings, paragraphs, lists, tables,
charts) and each renderer writes them out, so the Markdown and the HTML say the
same thing. Inline text uses a small subset of Markdown: ``code``, **bold**
and [links](target), which the HTML renderer translates.

The HTML file needs nothing but a browser: its style, its charts (inline SVG,
hover values in ``<title>``) and its one script (sortable tables) are inside
it, and its Content-Security-Policy forbids loading anything else, so a page
that tried would show the attempt as an error in the browser's console.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from html import escape
from typing import List, Sequence, Union


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Paragraph:
    text: str


@dataclass
class Bullets:
    items: List[str]


@dataclass
class Table:
    header: List[str]
    rows: List[List[str]]
    text_columns: int = 1


@dataclass
class Chart:
    title: str
    file_name: str
    svg: str


@dataclass
class Code:
    text: str


Block = Union[Heading, Paragraph, Bullets, Table, Chart, Code]


@dataclass
class Document:
    title: str
    blocks: List[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)


# -- Markdown ------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]],
                   text_columns: int = 1) -> List[str]:
    """A Markdown table; the first ``text_columns`` are left-aligned, the figures right-aligned."""
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |",
             "|" + "|".join("---" if i < text_columns else "---:" for i in range(len(header)))
             + "|"]
    lines.extend("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows)
    return lines


def to_markdown(document: Document) -> str:
    lines = [f"# {document.title}", ""]
    for block in document.blocks:
        if isinstance(block, Heading):
            lines += [f"{'#' * block.level} {block.text}", ""]
        elif isinstance(block, Paragraph):
            lines += [block.text, ""]
        elif isinstance(block, Bullets):
            lines += [*(f"- {item}" for item in block.items), ""]
        elif isinstance(block, Table):
            lines += [*markdown_table(block.header, block.rows, block.text_columns), ""]
        elif isinstance(block, Chart):
            lines += [f"![{block.title}]({block.file_name})", ""]
        elif isinstance(block, Code):
            lines += ["```", block.text, "```", ""]
    return "\n".join(lines)


# -- HTML ------------------------------------------------------------------------------

_INLINE = re.compile(r"`([^`]+)`|\*\*(.+?)\*\*|\[([^\]]+)\]\(([^)\s]+)\)")


def inline_html(text: str) -> str:
    """``code``, **bold** and [text](link) as HTML; everything else escaped."""
    out: List[str] = []
    position = 0
    for match in _INLINE.finditer(text):
        out.append(escape(text[position:match.start()]))
        code, bold, link_text, link = match.groups()
        if code is not None:
            out.append(f"<code>{escape(code)}</code>")
        elif bold is not None:
            out.append(f"<strong>{inline_html(bold)}</strong>")
        else:
            out.append(f'<a href="{escape(link)}">{escape(link_text)}</a>')
        position = match.end()
    out.append(escape(text[position:]))
    return "".join(out)


def anchor(text: str) -> str:
    """The id GitHub gives a Markdown heading, so that links work in both renderings."""
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


STYLE = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 1.5em auto; max-width: 1200px;
       padding: 0 1em; color: #111; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.8em; }
h3 { margin-top: 1.4em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.86em; }
th, td { border: 1px solid #d4d4d4; padding: 3px 7px; vertical-align: top; }
th { background: #f0f0f0; cursor: pointer; } td.n { text-align: right; white-space: nowrap; }
tr:nth-child(even) td { background: #fafafa; }
code { background: #f3f3f3; padding: 0 3px; border-radius: 3px; font-size: 0.95em; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; }
figure { margin: 0.5em 0 1.2em; overflow-x: auto; } figcaption { font-size: 0.85em; color: #444; }
svg.chart .estimate:hover line, svg.chart .estimate:hover circle { stroke-width: 3; }
nav { font-size: 0.9em; columns: 2; }
"""

SCRIPT = """
document.querySelectorAll("table").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.title = "click to sort";
    th.addEventListener("click", function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var ascending = th.dataset.order !== "asc";
      th.dataset.order = ascending ? "asc" : "desc";
      function key(row) {
        var text = row.cells[column] ? row.cells[column].textContent : "";
        var number = parseFloat(text.replace(/,/g, ""));
        return isNaN(number) ? text : number;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        var order = (typeof x === typeof y) ? (x < y ? -1 : x > y ? 1 : 0)
                                             : (typeof x === "number" ? -1 : 1);
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
document.body.dataset.ready = "yes";
"""

POLICY = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
          "img-src data:")


def _html_table(block: Table) -> str:
    head = "".join(f"<th>{inline_html(h)}</th>" for h in block.header)
    body = []
    for row in block.rows:
        cells = "".join(
            f"<td>{inline_html(c)}</td>" if i < block.text_columns
            else f'<td class="n">{inline_html(c)}</td>' for i, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def to_html(document: Document) -> str:
    headings = [block for block in document.blocks
                if isinstance(block, Heading) and block.level == 2]
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{escape(document.title)}</title>", f"<style>{STYLE}</style>", "</head>",
             "<body>", f"<h1>{escape(document.title)}</h1>",
             "<nav>" + "<br>".join(f'<a href="#{anchor(h.text)}">{inline_html(h.text)}</a>'
                                   for h in headings) + "</nav>"]
    for block in document.blocks:
        if isinstance(block, Heading):
            parts.append(f'<h{block.level} id="{anchor(block.text)}">'
                         f"{inline_html(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{inline_html(block.text)}</p>")
        elif isinstance(block, Bullets):
            parts.append("<ul>" + "".join(f"<li>{inline_html(item)}</li>"
                                          for item in block.items) + "</ul>")
        elif isinstance(block, Table):
            parts.append(_html_table(block))
        elif isinstance(block, Chart):
            parts.append(f"<figure>{block.svg}<figcaption>{escape(block.title)} "
                         f"(hover a mark for its value)</figcaption></figure>")
        elif isinstance(block, Code):
            parts.append(f"<pre>{escape(block.text)}</pre>")
    parts += [f"<script>{SCRIPT}</script>", "</body>", "</html>", ""]
    return "\n".join(parts)


def regressions_status(regressions: Sequence[str], rule: str) -> int:
    """A command's exit status: 1 after listing ``regressions`` on stderr, else 0.

    ``rule`` says what made them regressions ("past 5%")."""
    if not regressions:
        return 0
    print(f"{len(regressions)} regression(s) {rule}:", file=sys.stderr)
    for line in regressions:
        print(f"  {line}", file=sys.stderr)
    return 1
