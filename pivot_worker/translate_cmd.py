"""``pivot-worker translate FILE``: show the callflow a document becomes, without a broker.

TwiML is translated exactly as the worker would (with a preview signing key, so the continuation
tokens in the output are not valid on real workers); Kazoo JSON is validated and completed with
Kazoo's defaults. Errors are printed numbered, with line/column or JSON pointer, and the command
exits 1. Warnings go to stderr; the flow goes to stdout as pretty JSON.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, BinaryIO, TextIO

import orjson

from .errors import Finding, PivotError, TranslationError

DEFAULT_URL = "https://example.com/twiml"
PREVIEW_KEY = b"pivot-worker translate preview key"
PREVIEW_CALL_ID = "translate-preview"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``translate`` subcommand to the ``pivot-worker`` command line."""
    cmd = subparsers.add_parser(
        "translate",
        help="print the Kazoo callflow a TwiML or Kazoo JSON document becomes (no broker needed)",
        description=__doc__,
    )
    cmd.add_argument("file", metavar="FILE", help="the document to translate; '-' reads standard input")
    cmd.add_argument(
        "--format", choices=("twiml", "kazoo"), default=None, help="document format (default: sniffed)"
    )
    cmd.add_argument("--url", default=DEFAULT_URL, help=f"URL the document came from (default {DEFAULT_URL})")
    cmd.add_argument(
        "--after-dial-extension",
        default=os.environ.get("PIVOT_AFTER_DIAL_EXTENSION", ""),
        metavar="EXT",
        help="as PIVOT_AFTER_DIAL_EXTENSION (default: that variable): answered Dials transfer there",
    )
    cmd.set_defaults(func=run)


def sniff(body: bytes) -> str:
    """``kazoo`` when the document starts like JSON, else ``twiml``."""
    start = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return "kazoo" if start in (b"{", b"[") else "twiml"


def _read(path: str, stdin: BinaryIO) -> bytes:
    if path == "-":
        return stdin.read()
    with open(path, "rb") as handle:
        return handle.read()


def _describe(finding: Finding) -> str:
    where = []
    if finding.line is not None:
        where.append(f"line {finding.line}" + (f", column {finding.column}" if finding.column else ""))
    if finding.pointer:
        where.append(finding.pointer)
    prefix = " ".join(where) or "document"
    return f"{prefix}: {finding.message} [{finding.code}]"


def _print_findings(findings: list[Finding], out: TextIO, label: str) -> None:
    for number, finding in enumerate(findings, 1):
        print(f"{label} {number}: {_describe(finding)}", file=out)


def translate_document(
    body: bytes, fmt: str, url: str, after_dial_extension: str = ""
) -> tuple[dict[str, Any], list[Finding]]:
    """Translate or validate ``body``; raises ``TranslationError``/``PivotError`` as the worker would."""
    if fmt == "kazoo":
        from .callflow.pivots import check_pivot_urls
        from .callflow.validate import validate_flow
        from .errors import Reason

        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise TranslationError(
                "Kazoo JSON could not be parsed",
                reason=Reason.PARSE_ERROR,
                findings=[Finding("json", str(exc))],
            ) from exc
        flow = validate_flow(document)
        check_pivot_urls(flow, _static_check)  # as the worker refuses them, before any request
        return flow, []

    from .twiml import TwimlContext, translate_twiml

    ctx = TwimlContext(
        document_url=url,
        request_format="twiml",
        request_body_format="form",
        call_id=PREVIEW_CALL_ID,
        continuation=None,
        continuation_key=PREVIEW_KEY,
        max_iterations=50,
        recording_url="",
        check_url=_static_check,
        after_dial_extension=after_dial_extension,
    )
    translation = translate_twiml(body, ctx)
    return translation.flow, translation.warnings


def _static_check(url: str) -> None:
    from .netguard import AddressPolicy, check_url

    check_url(url, AddressPolicy())


def run(args: argparse.Namespace, *, stdin: BinaryIO | None = None, out: TextIO | None = None) -> int:
    """Entry point of ``pivot-worker translate``; returns the process exit code."""
    stdout = out or sys.stdout
    stderr = out or sys.stderr
    try:
        body = _read(args.file, stdin or sys.stdin.buffer)
    except OSError as exc:
        print(f"error 1: cannot read {args.file}: {exc.strerror or exc}", file=stderr)
        return 1
    fmt = args.format or sniff(body)
    try:
        flow, warnings = translate_document(body, fmt, args.url, args.after_dial_extension)
    except TranslationError as exc:
        print(f"{fmt} document rejected ({exc.reason}): {len(exc.findings)} error(s)", file=stderr)
        _print_findings(exc.findings, stderr, "error")
        _print_findings(exc.warnings, stderr, "warning")
        return 1
    except PivotError as exc:
        print(f"error 1: {exc} [{exc.reason}]", file=stderr)
        return 1
    _print_findings(warnings, stderr, "warning")
    stdout.write(orjson.dumps(flow, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0
