"""Generated parts of the README, from the same declarations the validation runs on.

`python -m local.docs` rewrites the blocks between `<!-- generated:NAME -->` and
`<!-- /generated:NAME -->`; a test fails when the README is out of date.
"""

from __future__ import annotations

import os

from sesmail import rules

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")


def _table(spec: rules.Object) -> str:
    lines = ["| field | rule | code when broken |", "|---|---|---|"]
    for field, rule, code in rules.rule_table(spec):
        lines.append(f"| `{field}` | {rule.replace('|', '&#124;')} | `{code}` |")
    return "\n".join(lines)


def send_email_rules() -> str:
    return _table(rules.SEND_EMAIL)


def batch_send_email_rules() -> str:
    return _table(rules.BATCH_SEND_EMAIL)


BLOCKS = {"send-rules": send_email_rules, "batch-rules": batch_send_email_rules}


def render(text: str) -> str:
    for name, build in BLOCKS.items():
        start, end = f"<!-- generated:{name} -->", f"<!-- /generated:{name} -->"
        head, found, rest = text.partition(start)
        _, closed, tail = rest.partition(end)
        if not (found and closed):
            raise ValueError(f"README: the block {name!r} needs both of its markers")
        text = head + start + "\n" + build() + "\n" + end + tail
    return text


def main() -> None:
    with open(README, encoding="utf-8") as handle:
        text = handle.read()
    with open(README, "w", encoding="utf-8") as handle:
        handle.write(render(text))


if __name__ == "__main__":
    main()
