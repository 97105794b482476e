"""Caffe's upgrade tools as verbs: upgrade_net_proto_text, upgrade_net_proto_binary,
upgrade_solver_proto_text. Each reads IN, applies the upgrades, writes OUT (even when
already current, as Caffe does) and exits 1 when the upgrade had problems.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from engine.io.binary import parse_net_binary, write_net_binary
from engine.io.prototxt import (
    parse_net_text,
    parse_solver_text,
    read_text_file,
    write_net_prototxt,
    write_solver_prototxt,
)
from engine.io.upgrade import net_needs_upgrade, upgrade_net_report, upgrade_solver
from engine.logsetup import setup_logging

log = logging.getLogger("brewnet.upgrade")


def _args(verb: str, argv: list[str], what: str) -> tuple[str, str] | None:
    if len(argv) != 2 or any(a in ("-h", "--help") for a in argv):
        sys.stderr.write(f"usage: brewnet {verb} {what}_IN {what}_OUT\n")
        return None
    return argv[0], argv[1]


def _upgrade_net(verb: str, argv: list[str], binary: bool) -> int:
    setup_logging()
    args = _args(verb, argv, "NET_BINARY" if binary else "NET_PROTOTXT")
    if args is None:
        return 1
    src, dst = args
    param = parse_net_binary(src) if binary else parse_net_text(read_text_file(src, "net prototxt"), src)
    problems: list[str] = []
    if net_needs_upgrade(param):
        param, _, problems = upgrade_net_report(param, src)
        if problems:
            log.error("Encountered %d error(s) while upgrading %s; see details above.", len(problems), src)
        else:
            log.info("Upgraded %s to the current NetParameter format.", src)
    else:
        log.info("File already in latest proto format: %s", src)
    if binary:
        write_net_binary(param, dst)
    else:
        write_net_prototxt(param, dst)
    log.info("Wrote upgraded NetParameter %s proto to %s", "binary" if binary else "text", dst)
    return 1 if problems else 0


def upgrade_net_proto_text(argv: list[str]) -> int:
    return _upgrade_net("upgrade_net_proto_text", argv, binary=False)


def upgrade_net_proto_binary(argv: list[str]) -> int:
    return _upgrade_net("upgrade_net_proto_binary", argv, binary=True)


def upgrade_solver_proto_text(argv: list[str]) -> int:
    setup_logging()
    args = _args("upgrade_solver_proto_text", argv, "SOLVER_PROTOTXT")
    if args is None:
        return 1
    src, dst = args
    param, changed = upgrade_solver(parse_solver_text(read_text_file(src, "solver prototxt"), src), src)
    if changed:
        log.info("Upgraded %s: solver_type -> type: \"%s\"", src, param.type)
    else:
        log.info("File already in latest proto format: %s", src)
    write_solver_prototxt(param, dst)
    log.info("Wrote upgraded SolverParameter text proto to %s", dst)
    return 0


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "upgrade_net_proto_text": upgrade_net_proto_text,
    "upgrade_net_proto_binary": upgrade_net_proto_binary,
    "upgrade_solver_proto_text": upgrade_solver_proto_text,
}
