"""Fixtures for the Switchboard interop suite (Autobahn|Python side)."""

from __future__ import annotations

import pytest

from interop_router import Router, start_router


@pytest.fixture(scope="module")
def router():
    """One router process for the whole test module."""
    r = start_router()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture()
def fresh_router():
    """A router process of its own for one test (for tests that stop it)."""
    r = start_router()
    try:
        yield r
    finally:
        r.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the router's log tail to failing tests' reports."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for name in ("router", "fresh_router"):
            r = item.funcargs.get(name) if hasattr(item, "funcargs") else None
            if isinstance(r, Router):
                report.sections.append((f"{r.kind} log tail ({r.log_path})", r.log_tail(40)))
