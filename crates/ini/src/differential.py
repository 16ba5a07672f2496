"""Reads DIR/0.ini .. DIR/(COUNT-1).ini with the parser a dialect's project uses and prints, per
file, JSON: {"ok": [[section, [[key, value], ...]], ...]} or {"error": msg}.

Used by the ini crate's differential test: supervisor uses the standard
library's RawConfigParser set up as supervisord sets it up; circus needs
the circus package (bench/.venv) and is skipped by the test without it.
"""
import configparser
import json
import sys


def supervisor_parser():
    return configparser.RawConfigParser(inline_comment_prefixes=(";", "#"), strict=False)


def circus_parser():
    from circus.util import StrictConfigParser
    return StrictConfigParser()


def main():
    dialect, directory, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    for i in range(count):
        path = "%s/%d.ini" % (directory, i)
        parser = supervisor_parser() if dialect == "supervisor" else circus_parser()
        try:
            with open(path, encoding="utf-8", newline=None) as f:
                parser.read_file(f)
            sections = []
            for name in parser.sections():
                items = [[k, v] for k, v in parser._sections[name].items() if k != "__name__"]
                sections.append([name, items])
            if parser._defaults:
                sections.insert(0, ["DEFAULT", [[k, v] for k, v in parser._defaults.items()]])
            print(json.dumps({"ok": sections}))
        except configparser.Error as e:
            print(json.dumps({"error": str(e).splitlines()[0]}))


main()
