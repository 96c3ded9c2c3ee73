"""Generated parts of the README, from the same declarations the validation runs on.

`python -m local.docs` rewrites the blocks between `<!-- generated:NAME -->` and
`<!-- /generated:NAME -->`; a test fails when the README is out of date.
"""

from __future__ import annotations

import os

from sesmail import rules

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")


def send_email_rules() -> str:
    lines = ["| field | rule | code when broken |", "|---|---|---|"]
    for field, rule, code in rules.rule_table(rules.SEND_EMAIL):
        lines.append(f"| `{field}` | {rule.replace('|', '&#124;')} | `{code}` |")
    return "\n".join(lines)


BLOCKS = {"send-rules": send_email_rules}


def render(text: str) -> str:
    for name, build in BLOCKS.items():
        start, end = f"<!-- generated:{name} -->\n", f"\n<!-- /generated:{name} -->"
        head, found, rest = text.partition(start)
        if found:
            text = head + start + build() + end + rest.partition(end)[2]
    return text


def main() -> None:
    with open(README, encoding="utf-8") as handle:
        text = handle.read()
    with open(README, "w", encoding="utf-8") as handle:
        handle.write(render(text))


if __name__ == "__main__":
    main()
